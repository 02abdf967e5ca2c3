# The Tributary Helm chart on a cluster a platform module (modules/eks or
# modules/gke) created: the platform namespace, the database and MLflow auth
# Secrets the chart reads, and the release. Called by envs/eks and envs/gke.

locals {
  chart_path        = "${path.module}/../../../helm/tributary"
  chart_values_file = "${local.chart_path}/values-${var.profile}.yaml"
  database_secret   = "tributary-db"

  # Everything the chart needs from the stack, under `cloud.*` (documented
  # in terraform/README.md, "Chart values passed by Terraform").
  chart_cloud_values = {
    cloud = {
      buckets = {
        lake            = var.platform.bucket_names["lake"]
        checkpoints     = var.platform.bucket_names["checkpoints"]
        mlflowArtifacts = var.platform.bucket_names["mlflow_artifacts"]
        sparkEvents     = var.platform.bucket_names["spark_events"]
        airflowLogs     = var.platform.bucket_names["airflow_logs"]
      }
      serviceAccountAnnotations = {
        spark         = var.platform.service_account_annotations["spark"]
        airflowWorker = var.platform.service_account_annotations["airflow"]
        mlflow        = var.platform.service_account_annotations["mlflow"]
      }
      database = {
        host            = var.platform.database_host
        port            = var.platform.database_port
        airflowDatabase = var.platform.database_names["airflow"]
        mlflowDatabase  = var.platform.database_names["mlflow"]
        existingSecret  = local.database_secret
        sslMode         = "require"
        createDatabases = var.platform.database_create_databases
      }
    }
  }

  database_url = "${var.platform.database_username}:${var.platform.database_password}@${var.platform.database_host}:${var.platform.database_port}"
}

resource "kubernetes_namespace_v1" "platform" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of" = "tributary"
    }
  }
}

# Database credentials for Airflow and MLflow; the chart reads them through
# cloud.database.existingSecret.
resource "kubernetes_secret_v1" "database" {
  metadata {
    name      = local.database_secret
    namespace = kubernetes_namespace_v1.platform.metadata[0].name
  }

  data = {
    username = var.platform.database_username
    password = var.platform.database_password
    # `connection` is the key the Airflow chart reads from data.metadataSecretName.
    connection        = "postgresql+psycopg2://${local.database_url}/${var.platform.database_names["airflow"]}?sslmode=require"
    mlflow-connection = "postgresql+psycopg2://${local.database_url}/${var.platform.database_names["mlflow"]}?sslmode=require"
  }
}

# MLflow basic-auth admin (chart value mlflow.auth.existingSecret). Random,
# kept in the state like the database password.
resource "random_password" "mlflow_admin" {
  length  = 32
  special = false
}

# MLflow's basic-auth app signs its CSRF tokens with this key (MLFLOW_FLASK_SERVER_SECRET_KEY).
resource "random_password" "mlflow_flask_secret" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "mlflow_auth" {
  metadata {
    name      = var.mlflow_auth_secret
    namespace = kubernetes_namespace_v1.platform.metadata[0].name
  }

  data = {
    username         = "admin"
    password         = random_password.mlflow_admin.result
    flask-secret-key = random_password.mlflow_flask_secret.result
  }
}

# The caller orders this whole module after its platform module (depends_on),
# so the release is removed before the cluster on destroy.
resource "helm_release" "tributary" {
  name              = var.release_name
  namespace         = kubernetes_namespace_v1.platform.metadata[0].name
  chart             = local.chart_path
  dependency_update = false
  wait              = true
  timeout           = var.timeout_seconds

  values = [
    fileexists(local.chart_values_file) ? file(local.chart_values_file) : "",
    yamlencode(local.chart_cloud_values),
  ]

  lifecycle {
    precondition {
      condition     = fileexists("${local.chart_path}/Chart.yaml") && fileexists(local.chart_values_file)
      error_message = "helm/tributary/Chart.yaml or values-${var.profile}.yaml is missing; set install_chart = false to deploy the infrastructure alone."
    }
  }

  depends_on = [kubernetes_secret_v1.database, kubernetes_secret_v1.mlflow_auth]
}
