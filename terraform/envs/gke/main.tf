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
# Tributary Helm chart
# ---------------------------------------------------------------------------

locals {
  platform_namespace = "tributary"
  chart_path         = "${path.module}/../../../helm/tributary"
  chart_values_file  = "${local.chart_path}/values-gke.yaml"
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

# Ordered after the whole platform module (node pools, Workload Identity
# bindings, Cloud SQL) on apply, and therefore removed before it on destroy.
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
      error_message = "helm/tributary/Chart.yaml or values-gke.yaml is missing; set install_chart = false to deploy the infrastructure alone."
    }
  }

  depends_on = [module.platform, kubernetes_secret_v1.database, kubernetes_secret_v1.mlflow_auth]
}
