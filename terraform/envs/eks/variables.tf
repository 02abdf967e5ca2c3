variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name; S3 bucket names derive from it and are global, so include something unique such as the account id."
  type        = string
}

variable "tags" {
  description = "Extra tags for every AWS resource."
  type        = map(string)
  default     = {}
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint: where Terraform, helm and kubectl run. Empty makes the endpoint private-only (run Terraform from inside the VPC then)."
  type        = list(string)
}

variable "cluster_admin_principal_arns" {
  description = "Extra IAM principals (SSO or CI roles) granted cluster-admin. The identity running Terraform is always admin."
  type        = list(string)
  default     = []
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version (pinned)."
  type        = string
  default     = "1.35"
}

variable "create_vpc" {
  description = "Create the VPC; false to use `vpc_id` and `private_subnet_ids`."
  type        = bool
  default     = true
}

variable "vpc_id" {
  description = "Existing VPC id when `create_vpc` is false."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Existing private subnet ids when `create_vpc` is false."
  type        = list(string)
  default     = []
}

variable "system_node_group" {
  description = "Overrides of the system node group; unset attributes keep the module defaults (see modules/eks)."
  type = object({
    instance_types = optional(list(string))
    min_size       = optional(number)
    max_size       = optional(number)
    desired_size   = optional(number)
    disk_size_gb   = optional(number)
  })
  default = {}
}

variable "spark_cpu_node_groups" {
  description = "Overrides of the Spark CPU node groups (spot + on-demand); unset attributes keep the module defaults."
  type = object({
    spot_instance_types      = optional(list(string))
    spot_min_size            = optional(number)
    spot_max_size            = optional(number)
    on_demand_instance_types = optional(list(string))
    on_demand_min_size       = optional(number)
    on_demand_max_size       = optional(number)
    disk_size_gb             = optional(number)
  })
  default = {}
}

variable "gpu_node_group" {
  description = "Overrides of the GPU node group; unset attributes keep the module defaults."
  type = object({
    instance_types = optional(list(string))
    capacity_type  = optional(string)
    min_size       = optional(number)
    max_size       = optional(number)
    disk_size_gb   = optional(number)
  })
  default = {}
}

variable "force_destroy" {
  description = "Let `terraform destroy` empty and delete the versioned buckets. Set true and apply before a planned teardown."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the RDS metadata database from deletion. Set false and apply before a planned teardown."
  type        = bool
  default     = true
}

variable "database_skip_final_snapshot" {
  description = "Skip the final RDS snapshot on destroy."
  type        = bool
  default     = false
}

variable "database_multi_az" {
  description = "Run RDS Multi-AZ. False halves the database cost for non-production stacks."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Tributary Helm chart
# ---------------------------------------------------------------------------

variable "install_chart" {
  description = "Install the Tributary Helm chart (helm/tributary) with helm_release. False plans and applies the infrastructure alone, e.g. before the chart exists."
  type        = bool
  default     = true
}

variable "release_name" {
  description = "Helm release name of the Tributary chart."
  type        = string
  default     = "tributary"
}

variable "chart_timeout_seconds" {
  description = "How long helm waits for the release's resources to become ready."
  type        = number
  default     = 900
}

variable "airflow_service" {
  description = "Service and port of the Airflow UI (api-server) rendered by the chart, for the port-forward command in the outputs."
  type = object({
    name = string
    port = number
  })
  default = {
    name = "tributary-airflow-api-server"
    port = 8080
  }
}

variable "mlflow_service" {
  description = "Service and port of the MLflow server rendered by the chart, for the port-forward command in the outputs."
  type = object({
    name = string
    port = number
  })
  default = {
    name = "tributary-mlflow"
    port = 5000
  }
}
