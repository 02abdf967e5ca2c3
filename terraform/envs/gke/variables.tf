variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the cluster, buckets and database."
  type        = string
  default     = "europe-west4"
}

variable "name_prefix" {
  description = "Prefix of every resource name (at most 21 characters); GCS bucket names derive from it and are global."
  type        = string
}

variable "labels" {
  description = "Extra labels for every labelable resource."
  type        = map(string)
  default     = {}
}

variable "master_authorized_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API: where Terraform, helm and kubectl run."
  type        = list(string)
}

variable "kubernetes_version" {
  description = "Minimum GKE control plane version; GKE upgrades within the release channel."
  type        = string
  default     = "1.35"
}

variable "release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"
}

variable "node_zones" {
  description = "Zones of the CPU node pools; empty lets GKE pick in the region."
  type        = list(string)
  default     = []
}

variable "system_node_pool" {
  description = "Overrides of the system node pool; unset attributes keep the module defaults (see modules/gke)."
  type = object({
    machine_type   = optional(string)
    min_node_count = optional(number)
    max_node_count = optional(number)
    disk_size_gb   = optional(number)
  })
  default = {}
}

variable "spark_cpu_node_pools" {
  description = "Overrides of the Spark CPU node pools (spot + on-demand); unset attributes keep the module defaults."
  type = object({
    spot_machine_type        = optional(string)
    spot_min_node_count      = optional(number)
    spot_max_node_count      = optional(number)
    on_demand_machine_type   = optional(string)
    on_demand_min_node_count = optional(number)
    on_demand_max_node_count = optional(number)
    disk_size_gb             = optional(number)
  })
  default = {}
}

variable "gpu_node_pool" {
  description = "Overrides of the GPU node pool; unset attributes keep the module defaults."
  type = object({
    machine_type       = optional(string)
    accelerator_type   = optional(string)
    accelerator_count  = optional(number)
    gpu_driver_version = optional(string)
    spot               = optional(bool)
    zones              = optional(list(string))
    min_node_count     = optional(number)
    max_node_count     = optional(number)
    disk_size_gb       = optional(number)
  })
  default = {}
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for customer-managed encryption of buckets and Kubernetes Secrets; null keeps Google-managed encryption."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` empty and delete the versioned buckets. Set true and apply before a planned teardown."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the GKE cluster and Cloud SQL from deletion. Set false and apply before a planned teardown."
  type        = bool
  default     = true
}

variable "database_availability_type" {
  description = "Cloud SQL REGIONAL (HA) or ZONAL. ZONAL halves the database cost for non-production stacks."
  type        = string
  default     = "REGIONAL"
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
