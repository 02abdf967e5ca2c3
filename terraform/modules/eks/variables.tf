# ---------------------------------------------------------------------------
# Naming and tagging
# ---------------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every resource name (`<name_prefix>-<component>`). S3 bucket names are global, so make it unique, e.g. `tributary-prod-123456789012`."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,37}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-39 characters of lowercase letters, digits and dashes, start with a letter and not end with a dash."
  }
}

variable "tags" {
  description = "Tags added to every AWS resource, on top of `project = tributary` and `tributary.dev/name-prefix`."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "create_vpc" {
  description = "Create a VPC (public + private subnets, NAT, flow logs). Set to false to bring your own with `vpc_id` and `private_subnet_ids`."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR of the VPC created when `create_vpc` is true. Private subnets are /20s carved from its start, public subnets /24s from its end."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be a valid IPv4 CIDR of size /16 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones of the created VPC (2 to 4). Empty means the first `availability_zone_count` zones of the region."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4)
    error_message = "availability_zones must list 2 to 4 zones, or be empty."
  }
}

variable "availability_zone_count" {
  description = "Number of availability zones the created VPC spans when `availability_zones` is empty."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 4
    error_message = "availability_zone_count must be between 2 and 4 (EKS needs two, the subnet plan has room for four)."
  }
}

variable "single_nat_gateway" {
  description = "Use one NAT gateway for the whole VPC instead of one per availability zone. Cheaper, but egress then depends on a single zone."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Existing VPC id, used only when `create_vpc` is false."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Existing private subnet ids (at least two zones, with NAT egress), used only when `create_vpc` is false. Nodes, the control plane ENIs and RDS go there."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version. Pinned: upgrade it deliberately together with `cluster_autoscaler_image_tag`, whose minor must match."
  type        = string
  default     = "1.35"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.35."
  }
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint (where Terraform, helm and kubectl run). Empty keeps the endpoint private-only; Terraform must then run inside the VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of cluster_endpoint_public_access_cidrs must be a valid CIDR."
  }
}

variable "cluster_admin_principal_arns" {
  description = "IAM principal ARNs (roles or users) granted cluster-admin through EKS access entries, in addition to the identity that runs Terraform."
  type        = list(string)
  default     = []
}

variable "cluster_log_retention_days" {
  description = "Retention of the control plane CloudWatch log group, in days."
  type        = number
  default     = 90
}

variable "system_node_group" {
  description = "System node group (label `tributary.dev/pool=system`): cluster controllers, Airflow, MLflow and the Spark operator."
  type = object({
    instance_types = optional(list(string), ["m6i.xlarge"])
    min_size       = optional(number, 2)
    max_size       = optional(number, 4)
    desired_size   = optional(number, 2)
    disk_size_gb   = optional(number, 50)
  })
  default = {}

  validation {
    condition     = var.system_node_group.min_size >= 1 && var.system_node_group.min_size <= var.system_node_group.desired_size && var.system_node_group.desired_size <= var.system_node_group.max_size
    error_message = "system_node_group needs 1 <= min_size <= desired_size <= max_size: controllers must always have a node."
  }
}

variable "spark_cpu_node_groups" {
  description = "Spark CPU capacity (label `tributary.dev/pool=spark-cpu`): a spot group for executors and an on-demand group for drivers and spot fallback, told apart by `tributary.dev/capacity=spot|on-demand`. Both scale between their min and max."
  type = object({
    spot_instance_types      = optional(list(string), ["m6i.2xlarge", "m6a.2xlarge", "m5.2xlarge", "m7i.2xlarge"])
    spot_min_size            = optional(number, 0)
    spot_max_size            = optional(number, 20)
    on_demand_instance_types = optional(list(string), ["m6i.2xlarge"])
    on_demand_min_size       = optional(number, 0)
    on_demand_max_size       = optional(number, 6)
    disk_size_gb             = optional(number, 200)
  })
  default = {}

  validation {
    condition = (
      var.spark_cpu_node_groups.spot_min_size >= 0 &&
      var.spark_cpu_node_groups.spot_min_size <= var.spark_cpu_node_groups.spot_max_size &&
      var.spark_cpu_node_groups.spot_max_size >= 1 &&
      var.spark_cpu_node_groups.on_demand_min_size >= 0 &&
      var.spark_cpu_node_groups.on_demand_min_size <= var.spark_cpu_node_groups.on_demand_max_size &&
      var.spark_cpu_node_groups.on_demand_max_size >= 1
    )
    error_message = "spark_cpu_node_groups needs 0 <= min_size <= max_size and max_size >= 1 for both the spot and the on-demand group."
  }
}

variable "gpu_node_group" {
  description = "GPU node group (labels `tributary.dev/pool=gpu` and `nvidia.com/gpu.present=true`, taint `nvidia.com/gpu=true:NoSchedule`) for training and batch scoring. g5/g6 instances on the EKS NVIDIA AL2023 AMI; min_size 0 lets it scale to zero."
  type = object({
    instance_types = optional(list(string), ["g6.xlarge", "g5.xlarge"])
    capacity_type  = optional(string, "ON_DEMAND")
    min_size       = optional(number, 0)
    max_size       = optional(number, 4)
    disk_size_gb   = optional(number, 200)
  })
  default = {}

  validation {
    condition     = alltrue([for t in var.gpu_node_group.instance_types : can(regex("^g(5|6|6e)\\.", t))])
    error_message = "gpu_node_group.instance_types must be g5, g6 or g6e instances."
  }

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_node_group.capacity_type)
    error_message = "gpu_node_group.capacity_type must be ON_DEMAND or SPOT."
  }

  validation {
    condition     = var.gpu_node_group.min_size >= 0 && var.gpu_node_group.min_size <= var.gpu_node_group.max_size && var.gpu_node_group.max_size >= 1
    error_message = "gpu_node_group needs 0 <= min_size <= max_size and max_size >= 1."
  }
}

# ---------------------------------------------------------------------------
# Cluster add-ons installed with Helm
# ---------------------------------------------------------------------------

variable "cluster_autoscaler_chart_version" {
  description = "Version of the kubernetes/autoscaler `cluster-autoscaler` Helm chart."
  type        = string
  default     = "9.59.0"
}

variable "cluster_autoscaler_image_tag" {
  description = "cluster-autoscaler image tag. Its minor version must equal `kubernetes_version`."
  type        = string
  default     = "v1.35.0"
}

variable "nvidia_device_plugin_chart_version" {
  description = "Version of the NVIDIA `nvidia-device-plugin` Helm chart, which advertises `nvidia.com/gpu` on GPU nodes."
  type        = string
  default     = "0.20.0"
}

# ---------------------------------------------------------------------------
# Workloads (names are the contract with helm/tributary)
# ---------------------------------------------------------------------------

variable "platform_namespace" {
  description = "Kubernetes namespace of the platform services (Airflow, MLflow). Must match the chart."
  type        = string
  default     = "tributary"
}

variable "jobs_namespace" {
  description = "Kubernetes namespace where SparkApplications run. Must match the chart."
  type        = string
  default     = "tributary-jobs"
}

# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty (versioned) buckets, object versions included. Keep false in production; set true and apply before a planned teardown."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days a non-current object version is kept before S3 expires it."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept in the access-log bucket."
  type        = number
  default     = 90
}

# ---------------------------------------------------------------------------
# Metadata database (RDS PostgreSQL for Airflow and MLflow)
# ---------------------------------------------------------------------------

variable "database_engine_version" {
  description = "RDS PostgreSQL major version; RDS picks the minor and applies minor upgrades in the maintenance window."
  type        = string
  default     = "17"
}

variable "database_instance_class" {
  description = "RDS instance class of the metadata database."
  type        = string
  default     = "db.t4g.medium"
}

variable "database_allocated_storage_gb" {
  description = "Initial RDS storage in GiB."
  type        = number
  default     = 50
}

variable "database_max_allocated_storage_gb" {
  description = "Upper bound of RDS storage autoscaling in GiB."
  type        = number
  default     = 200
}

variable "database_multi_az" {
  description = "Run the metadata database as a Multi-AZ deployment (standby in a second zone)."
  type        = bool
  default     = true
}

variable "database_backup_retention_days" {
  description = "Days of automated RDS backups (point-in-time recovery window)."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Protect the RDS instance from deletion. Set false and apply before `terraform destroy`."
  type        = bool
  default     = true
}

variable "database_skip_final_snapshot" {
  description = "Skip the final RDS snapshot on destroy. When false the snapshot is named `<name_prefix>-metadata-final` and must not exist yet."
  type        = bool
  default     = false
}
