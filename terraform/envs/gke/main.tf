# Tributary on GKE: the platform module, then the Tributary Helm chart.
#
#   terraform init -backend-config=backend.hcl
#   terraform apply
#
# See docs/deploy-eks-gke.md for the whole walk-through and teardown.

provider "google" {
  project = var.project_id
  region  = var.region
}

# Short-lived OAuth token of the identity running Terraform.
data "google_client_config" "current" {}

provider "kubernetes" {
  host                   = module.platform.cluster_endpoint
  cluster_ca_certificate = base64decode(module.platform.cluster_ca_certificate)
  token                  = data.google_client_config.current.access_token
}

provider "helm" {
  kubernetes = {
    host                   = module.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(module.platform.cluster_ca_certificate)
    token                  = data.google_client_config.current.access_token
  }
}

module "platform" {
  source = "../../modules/gke"

  project_id              = var.project_id
  region                  = var.region
  name_prefix             = var.name_prefix
  labels                  = var.labels
  master_authorized_cidrs = var.master_authorized_cidrs
  kubernetes_version      = var.kubernetes_version
  release_channel         = var.release_channel
  node_zones              = var.node_zones

  system_node_pool     = var.system_node_pool
  spark_cpu_node_pools = var.spark_cpu_node_pools
  gpu_node_pool        = var.gpu_node_pool

  kms_key_name               = var.kms_key_name
  force_destroy              = var.force_destroy
  deletion_protection        = var.deletion_protection
  database_availability_type = var.database_availability_type
}

# ---------------------------------------------------------------------------
# Tributary Helm chart (modules/chart)
# ---------------------------------------------------------------------------

locals {
  platform_namespace = "tributary"
  mlflow_auth_secret = "tributary-mlflow-auth"
}

# Ordered after the whole platform module on apply, and therefore removed
# before it on destroy.
module "chart" {
  source = "../../modules/chart"
  count  = var.install_chart ? 1 : 0

  profile            = "gke"
  namespace          = local.platform_namespace
  mlflow_auth_secret = local.mlflow_auth_secret
  release_name       = var.release_name
  timeout_seconds    = var.chart_timeout_seconds
  platform           = module.platform

  depends_on = [module.platform]
}
