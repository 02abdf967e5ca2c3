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
# Tributary Helm chart
# ---------------------------------------------------------------------------

locals {
  platform_namespace = "tributary"
  chart_path         = "${path.module}/../../../helm/tributary"
  chart_values_file  = "${local.chart_path}/values-eks.yaml"
  database_secret    = "tributary-db"
  mlflow_auth_secret = "tributary-mlflow-auth"

  # Everything the chart needs from this stack, under `cloud.*` (documented
  # in terraform/README.md, "Chart values passed by Terraform").
  chart_cloud_values = {
    cloud = {
      buckets = {
        lake            = module.platform.bucket_names["lake"]
        checkpoints     = module.platform.bucket_names["checkpoints"]
        mlflowArtifacts = module.platform.bucket_names["mlflow_artifacts"]
        sparkEvents     = module.platform.bucket_names["spark_events"]
        airflowLogs     = module.platform.bucket_names["airflow_logs"]
      }
      serviceAccountAnnotations = {
        spark         = module.platform.service_account_annotations["spark"]
        airflowWorker = module.platform.service_account_annotations["airflow"]
        mlflow        = module.platform.service_account_annotations["mlflow"]
      }
      database = {
        host            = module.platform.database_host
        port            = module.platform.database_port
        airflowDatabase = module.platform.database_names["airflow"]
        mlflowDatabase  = module.platform.database_names["mlflow"]
        existingSecret  = local.database_secret
        sslMode         = "require"
        createDatabases = module.platform.database_create_databases
      }
    }
  }

  database_url = "${module.platform.database_username}:${module.platform.database_password}@${module.platform.database_host}:${module.platform.database_port}"
}

resource "kubernetes_namespace_v1" "platform" {
  count = var.install_chart ? 1 : 0

  metadata {
    name = local.platform_namespace
    labels = {
      "app.kubernetes.io/part-of" = "tributary"
    }
  }

  depends_on = [module.platform]
}

# Database credentials for Airflow and MLflow; the chart reads them through
# cloud.database.existingSecret.
resource "kubernetes_secret_v1" "database" {
  count = var.install_chart ? 1 : 0

  metadata {
    name      = local.database_secret
    namespace = kubernetes_namespace_v1.platform[0].metadata[0].name
  }

  data = {
    username = module.platform.database_username
    password = module.platform.database_password
    # `connection` is the key the Airflow chart reads from data.metadataSecretName.
    connection        = "postgresql+psycopg2://${local.database_url}/${module.platform.database_names["airflow"]}?sslmode=require"
    mlflow-connection = "postgresql+psycopg2://${local.database_url}/${module.platform.database_names["mlflow"]}?sslmode=require"
  }
}

# MLflow basic-auth admin (chart value mlflow.auth.existingSecret). Random,
# kept in the state like the database password.
resource "random_password" "mlflow_admin" {
  count = var.install_chart ? 1 : 0

  length  = 32
  special = false
}

# MLflow's basic-auth app signs its CSRF tokens with this key (MLFLOW_FLASK_SERVER_SECRET_KEY).
resource "random_password" "mlflow_flask_secret" {
  count = var.install_chart ? 1 : 0

  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "mlflow_auth" {
  count = var.install_chart ? 1 : 0

  metadata {
    name      = local.mlflow_auth_secret
    namespace = kubernetes_namespace_v1.platform[0].metadata[0].name
  }

  data = {
    username         = "admin"
    password         = random_password.mlflow_admin[0].result
    flask-secret-key = random_password.mlflow_flask_secret[0].result
  }
}

# Ordered after the whole platform module (node groups, EBS CSI, autoscaler,
# device plugin) on apply, and therefore removed before it on destroy.
resource "helm_release" "tributary" {
  count = var.install_chart ? 1 : 0

  name              = var.release_name
  namespace         = kubernetes_namespace_v1.platform[0].metadata[0].name
  chart             = local.chart_path
  dependency_update = false
  wait              = true
  timeout           = var.chart_timeout_seconds

  values = [
    fileexists(local.chart_values_file) ? file(local.chart_values_file) : "",
    yamlencode(local.chart_cloud_values),
  ]

  lifecycle {
    precondition {
      condition     = fileexists("${local.chart_path}/Chart.yaml") && fileexists(local.chart_values_file)
      error_message = "helm/tributary/Chart.yaml or values-eks.yaml is missing; set install_chart = false to deploy the infrastructure alone."
    }
  }

  depends_on = [module.platform, kubernetes_secret_v1.database, kubernetes_secret_v1.mlflow_auth]
}
