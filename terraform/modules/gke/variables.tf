# ---------------------------------------------------------------------------
# Naming, project and location
# ---------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that holds every resource."
  type        = string
}

variable "region" {
  description = "Region of the regional GKE cluster, the buckets (unless `bucket_location` is set) and Cloud SQL."
  type        = string
  default     = "europe-west4"
}

variable "name_prefix" {
  description = "Prefix of every resource name (`<name_prefix>-<component>`). GCS bucket names are global, so make it unique; at most 21 characters because service account ids are capped at 30."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,19}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-21 characters of lowercase letters, digits and dashes, start with a letter and not end with a dash."
  }
}

variable "labels" {
  description = "Labels added to every labelable resource, on top of `project = tributary` and `tributary-name-prefix`."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Google APIs the stack needs (container, compute, sqladmin, servicenetworking, iam, binaryauthorization). They are left enabled on destroy."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

variable "create_network" {
  description = "Create a VPC network, a subnet with secondary ranges for pods and services, and Cloud NAT. Set to false to bring your own with the `network_name`, `subnetwork_name` and `*_range_name` inputs. Either way the module reserves a private services range on the network for Cloud SQL."
  type        = bool
  default     = true
}

variable "subnet_cidr" {
  description = "Primary range of the created subnet (nodes)."
  type        = string
  default     = "10.50.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range of the created subnet for pod IPs (VPC-native)."
  type        = string
  default     = "10.64.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range of the created subnet for Service IPs."
  type        = string
  default     = "10.50.16.0/20"
}

variable "network_name" {
  description = "Existing VPC network name, used only when `create_network` is false."
  type        = string
  default     = null
}

variable "subnetwork_name" {
  description = "Existing subnet name in `region`, used only when `create_network` is false. It needs Private Google Access and NAT egress."
  type        = string
  default     = null
}

variable "pods_range_name" {
  description = "Name of the existing subnet's secondary range for pods, used only when `create_network` is false."
  type        = string
  default     = null
}

variable "services_range_name" {
  description = "Name of the existing subnet's secondary range for Services, used only when `create_network` is false."
  type        = string
  default     = null
}

variable "master_ipv4_cidr_block" {
  description = "/28 range of the private control plane endpoint."
  type        = string
  default     = "172.16.0.32/28"
}

variable "master_authorized_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API (where Terraform, helm and kubectl run). Nodes are always private."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.master_authorized_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of master_authorized_cidrs must be a valid CIDR."
  }
}

# ---------------------------------------------------------------------------
# Cluster and node pools
# ---------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "Minimum GKE control plane version (`min_master_version`). GKE upgrades within `release_channel` during maintenance windows; this pins the floor."
  type        = string
  default     = "1.35"
}

variable "release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "node_zones" {
  description = "Zones of the CPU node pools. Empty means every zone GKE picks in the region."
  type        = list(string)
  default     = []
}

variable "rbac_security_group" {
  description = "Optional Google Group for Kubernetes RBAC (`gke-security-groups@<your-domain>`), needs Google Workspace. Null disables Google Groups for RBAC."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the GKE cluster and the Cloud SQL instance from deletion. Set false and apply before `terraform destroy`."
  type        = bool
  default     = true
}

variable "system_node_pool" {
  description = "System node pool (label `tributary.dev/pool=system`): Airflow, MLflow and the Spark operator. Node counts are totals across zones."
  type = object({
    machine_type   = optional(string, "e2-standard-4")
    min_node_count = optional(number, 1)
    max_node_count = optional(number, 4)
    disk_size_gb   = optional(number, 50)
  })
  default = {}

  validation {
    condition     = var.system_node_pool.min_node_count >= 1 && var.system_node_pool.min_node_count <= var.system_node_pool.max_node_count
    error_message = "system_node_pool needs 1 <= min_node_count <= max_node_count."
  }
}

variable "spark_cpu_node_pools" {
  description = "Spark CPU node pools (label `tributary.dev/pool=spark-cpu`): a spot pool for executors and an on-demand pool for drivers, told apart by `tributary.dev/capacity=spot|on-demand`. Node counts are totals across zones."
  type = object({
    spot_machine_type        = optional(string, "n2-standard-8")
    spot_min_node_count      = optional(number, 0)
    spot_max_node_count      = optional(number, 20)
    on_demand_machine_type   = optional(string, "n2-standard-8")
    on_demand_min_node_count = optional(number, 0)
    on_demand_max_node_count = optional(number, 6)
    disk_size_gb             = optional(number, 200)
  })
  default = {}

  validation {
    condition = (
      var.spark_cpu_node_pools.spot_min_node_count >= 0 &&
      var.spark_cpu_node_pools.spot_min_node_count <= var.spark_cpu_node_pools.spot_max_node_count &&
      var.spark_cpu_node_pools.spot_max_node_count >= 1 &&
      var.spark_cpu_node_pools.on_demand_min_node_count >= 0 &&
      var.spark_cpu_node_pools.on_demand_min_node_count <= var.spark_cpu_node_pools.on_demand_max_node_count &&
      var.spark_cpu_node_pools.on_demand_max_node_count >= 1
    )
    error_message = "spark_cpu_node_pools needs 0 <= min <= max and max >= 1 for both pools."
  }
}

variable "gpu_node_pool" {
  description = "GPU node pool (labels `tributary.dev/pool=gpu`, `nvidia.com/gpu.present=true`, taint `nvidia.com/gpu=true:NoSchedule`). GKE installs the driver (`gpu_driver_version`) and the device plugin; min 0 lets it scale to zero. Pick zones that offer the accelerator."
  type = object({
    machine_type       = optional(string, "g2-standard-8")
    accelerator_type   = optional(string, "nvidia-l4")
    accelerator_count  = optional(number, 1)
    gpu_driver_version = optional(string, "LATEST")
    spot               = optional(bool, false)
    zones              = optional(list(string), [])
    min_node_count     = optional(number, 0)
    max_node_count     = optional(number, 4)
    disk_size_gb       = optional(number, 200)
  })
  default = {}

  validation {
    condition     = contains(["DEFAULT", "LATEST"], var.gpu_node_pool.gpu_driver_version)
    error_message = "gpu_node_pool.gpu_driver_version must be DEFAULT or LATEST."
  }

  validation {
    condition     = var.gpu_node_pool.min_node_count >= 0 && var.gpu_node_pool.min_node_count <= var.gpu_node_pool.max_node_count && var.gpu_node_pool.max_node_count >= 1
    error_message = "gpu_node_pool needs 0 <= min_node_count <= max_node_count and max_node_count >= 1."
  }
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

variable "bucket_location" {
  description = "Location of the GCS buckets. Null means the cluster's region."
  type        = string
  default     = null
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (projects/.../cryptoKeys/...) for customer-managed encryption of the buckets and of Kubernetes Secrets. Null keeps Google-managed encryption, which GCS and GKE always apply."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty (versioned) buckets, object versions included. Keep false in production; set true and apply before a planned teardown."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days a non-current object version is kept before it is deleted."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days GCS usage logs are kept in the access-log bucket."
  type        = number
  default     = 90
}

# ---------------------------------------------------------------------------
# Metadata database (Cloud SQL for PostgreSQL for Airflow and MLflow)
# ---------------------------------------------------------------------------

variable "database_version" {
  description = "Cloud SQL database version."
  type        = string
  default     = "POSTGRES_17"
}

variable "database_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "database_availability_type" {
  description = "REGIONAL (standby in a second zone) or ZONAL."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.database_availability_type)
    error_message = "database_availability_type must be REGIONAL or ZONAL."
  }
}

variable "database_disk_size_gb" {
  description = "Initial Cloud SQL disk size in GB; it grows automatically up to `database_disk_autoresize_limit_gb`."
  type        = number
  default     = 50
}

variable "database_disk_autoresize_limit_gb" {
  description = "Upper bound of Cloud SQL disk autoresize in GB."
  type        = number
  default     = 200
}

variable "database_backup_retention_count" {
  description = "Number of daily Cloud SQL backups kept (point-in-time recovery covers 7 days)."
  type        = number
  default     = 7
}
