# GCS buckets of the platform: uniform bucket-level access, public access
# prevention enforced, versioned, usage-logged. GCS encrypts every object at
# rest (Google-managed keys); `kms_key_name` switches to a customer key.
#
#   lake             Delta tables (bronze/silver/gold)
#   checkpoints      Structured Streaming checkpoints
#   mlflow-artifacts MLflow artifact store (served through the MLflow server)
#   spark-events     Spark event logs for the history server
#   airflow-logs     Airflow remote task logs

locals {
  buckets = {
    lake             = "${var.name_prefix}-lake"
    checkpoints      = "${var.name_prefix}-checkpoints"
    mlflow_artifacts = "${var.name_prefix}-mlflow-artifacts"
    spark_events     = "${var.name_prefix}-spark-events"
    airflow_logs     = "${var.name_prefix}-airflow-logs"
  }
  access_log_bucket = "${var.name_prefix}-access-logs"
  bucket_location   = coalesce(var.bucket_location, var.region)
}

# With a customer key, the GCS service agent must be able to use it.
data "google_storage_project_service_account" "this" {
  count   = var.kms_key_name == null ? 0 : 1
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "gcs" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.this[0].email_address}"
}

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the usage-log target; logging it to itself would loop.
  project                     = var.project_id
  name                        = local.access_log_bucket
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(local.labels, { "tributary-bucket" = "access-logs" })

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.access_log_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }
}

# GCS writes usage logs as this group; it needs write access to the target.
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

resource "google_storage_bucket" "this" {
  for_each = local.buckets

  project                     = var.project_id
  name                        = each.value
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = merge(local.labels, { "tributary-bucket" = replace(each.key, "_", "-") })

  versioning {
    enabled = true
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = each.value
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs, google_storage_bucket_iam_member.access_logs_writer]
}
