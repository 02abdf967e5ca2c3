variable "profile" {
  description = "Tributary profile of the platform: eks or gke. Picks helm/tributary/values-<profile>.yaml."
  type        = string

  validation {
    condition     = contains(["eks", "gke"], var.profile)
    error_message = "profile must be eks or gke."
  }
}

variable "namespace" {
  description = "Namespace of the platform (the chart refuses any other than tributary)."
  type        = string
  default     = "tributary"
}

variable "mlflow_auth_secret" {
  description = "Name of the Secret holding MLflow's basic-auth admin and Flask secret key."
  type        = string
  default     = "tributary-mlflow-auth"
}

variable "release_name" {
  description = "Helm release name of the Tributary chart."
  type        = string
  default     = "tributary"
}

variable "timeout_seconds" {
  description = "How long helm waits for the release's resources to become ready."
  type        = number
  default     = 900
}

variable "platform" {
  description = "The platform module itself (`module.platform` of modules/eks or modules/gke): its buckets, workload service account annotations and managed PostgreSQL."
  type = object({
    bucket_names                = map(string)
    service_account_annotations = map(map(string))
    database_host               = string
    database_port               = number
    database_names              = map(string)
    database_username           = string
    database_password           = string
    database_create_databases   = bool
  })
}
