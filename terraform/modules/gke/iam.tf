# Workload Identity: one Google service account per Tributary workload, which
# only its own Kubernetes service account may impersonate, with object roles
# on its own buckets only (bucket-level bindings, no project-level storage
# role). The chart annotates the Kubernetes service accounts with
# `iam.gke.io/gcp-service-account` (outputs.service_account_annotations).
#
#   spark   tributary-jobs/tributary-spark           rw: lake, checkpoints, spark-events
#   airflow tributary/tributary-airflow-worker       rw: airflow-logs   ro: lake, spark-events
#   mlflow  tributary/tributary-mlflow               rw: mlflow-artifacts
#
# MLflow runs with --serve-artifacts, so Spark and Airflow reach model
# artifacts through the MLflow server and need no access to that bucket.

locals {
  workloads = {
    spark = {
      namespace       = var.jobs_namespace
      service_account = "tributary-spark"
      read_write      = ["lake", "checkpoints", "spark_events"]
      read_only       = []
    }
    airflow = {
      namespace       = var.platform_namespace
      service_account = "tributary-airflow-worker"
      read_write      = ["airflow_logs"]
      read_only       = ["lake", "spark_events"]
    }
    mlflow = {
      namespace       = var.platform_namespace
      service_account = "tributary-mlflow"
      read_write      = ["mlflow_artifacts"]
      read_only       = []
    }
  }

  # Predefined object roles; none of them can change IAM or delete buckets.
  # legacyBucketReader adds storage.buckets.get, which the Hadoop GCS
  # connector calls.
  bucket_roles = {
    read_write = ["roles/storage.objectUser", "roles/storage.legacyBucketReader"]
    read_only  = ["roles/storage.objectViewer", "roles/storage.legacyBucketReader"]
  }

  bucket_bindings = merge(flatten([
    for w, cfg in local.workloads : [
      for access in ["read_write", "read_only"] : [
        for b in cfg[access] : {
          for role in local.bucket_roles[access] : "${w}|${b}|${role}" => {
            workload = w
            bucket   = b
            role     = role
          }
        }
      ]
    ]
  ])...)
}

resource "google_service_account" "workload" {
  for_each = local.workloads

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "Tributary ${each.key} (${each.value.namespace}/${each.value.service_account})"

  depends_on = [google_project_service.this]
}

# The workload pool <project>.svc.id.goog exists once the cluster does.
resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workloads

  service_account_id = google_service_account.workload[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${each.value.namespace}/${each.value.service_account}]"

  depends_on = [google_container_cluster.this]
}

resource "google_storage_bucket_iam_member" "workload" {
  for_each = local.bucket_bindings

  bucket = google_storage_bucket.this[each.value.bucket].name
  role   = each.value.role
  member = "serviceAccount:${google_service_account.workload[each.value.workload].email}"
}
