# Tributary on EKS: the platform module, then the Tributary Helm chart.
#
#   terraform init -backend-config=backend.hcl
#   terraform apply
#
# See docs/deploy-eks-gke.md for the whole walk-through and teardown.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "tributary"
    }
  }
}

# Both Kubernetes-facing providers get a fresh token per call from the AWS
# CLI, so long applies do not outlive a static token.
provider "kubernetes" {
  host                   = module.platform.cluster_endpoint
  cluster_ca_certificate = base64decode(module.platform.cluster_certificate_authority_data)

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.platform.cluster_name, "--region", var.region]
  }
}

provider "helm" {
  kubernetes = {
    host                   = module.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(module.platform.cluster_certificate_authority_data)

    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.platform.cluster_name, "--region", var.region]
    }
  }
}

module "platform" {
  source = "../../modules/eks"

  name_prefix                          = var.name_prefix
  tags                                 = var.tags
  kubernetes_version                   = var.kubernetes_version
  cluster_endpoint_public_access_cidrs = var.admin_cidrs
  cluster_admin_principal_arns         = var.cluster_admin_principal_arns

  create_vpc         = var.create_vpc
  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids

  system_node_group     = var.system_node_group
  spark_cpu_node_groups = var.spark_cpu_node_groups
  gpu_node_group        = var.gpu_node_group

  force_destroy                = var.force_destroy
  deletion_protection          = var.deletion_protection
  database_skip_final_snapshot = var.database_skip_final_snapshot
  database_multi_az            = var.database_multi_az
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

  profile            = "eks"
  namespace          = local.platform_namespace
  mlflow_auth_secret = local.mlflow_auth_secret
  release_name       = var.release_name
  timeout_seconds    = var.chart_timeout_seconds
  platform           = module.platform

  depends_on = [module.platform]
}
