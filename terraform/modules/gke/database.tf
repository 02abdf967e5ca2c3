# Metadata database: one Cloud SQL for PostgreSQL instance, private IP only,
# with the `airflow` and `mlflow` databases.
#
# Managed rather than in-cluster: the Airflow run history and the MLflow model
# registry must survive a cluster rebuild, get backups and point-in-time
# recovery without an operator, and no PersistentVolume pins them to one zone
# or blocks `terraform destroy`.

locals {
  database_username = "tributary"
  database_names = {
    airflow = "airflow"
    mlflow  = "mlflow"
  }
}

# Private services access: Cloud SQL gets an address in this VPC.
resource "google_compute_global_address" "private_services" {
  project       = var.project_id
  name          = "${var.name_prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = local.network_id

  depends_on = [google_project_service.this]
}

# ABANDON: the peering is released by Google once the instance is gone;
# deleting it eagerly fails while Cloud SQL still holds it.
resource "google_service_networking_connection" "this" {
  network                 = local.network_id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
  deletion_policy         = "ABANDON"
}

# Cloud SQL keeps a deleted instance's name reserved for a week; a suffix
# lets destroy + apply recreate the stack.
resource "random_id" "database" {
  byte_length = 3
}

# Alphanumeric so it can go into a connection URI unescaped.
resource "random_password" "database" {
  length  = 32
  special = false
}

resource "google_sql_database_instance" "this" {
  #checkov:skip=CKV_GCP_6:ssl_mode ENCRYPTED_ONLY rejects every unencrypted connection on a private-IP-only instance; client certificates would need the Cloud SQL Auth Proxy beside every Airflow and MLflow pod.
  #checkov:skip=CKV_GCP_79:PostgreSQL 17 is the newest major version Airflow 3.3 supports; raise database_version deliberately after Airflow does.
  #checkov:skip=CKV2_GCP_13:log_duration=on logs every statement of Airflow's chatty scheduler; slow statements are covered by Query Insights.
  project             = var.project_id
  name                = "${var.name_prefix}-metadata-${random_id.database.hex}"
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.database_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.database_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.database_disk_size_gb
    disk_autoresize             = true
    disk_autoresize_limit       = var.database_disk_autoresize_limit_gb
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled    = false
      private_network = local.network_id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.database_backup_retention_count
      }
    }

    maintenance_window {
      day  = 7
      hour = 3
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_service_networking_connection.this]
}

# ABANDON: the instance is deleted with all its databases; dropping them
# one by one first fails while Airflow or MLflow still hold connections.
resource "google_sql_database" "this" {
  for_each = local.database_names

  project         = var.project_id
  name            = each.value
  instance        = google_sql_database_instance.this.name
  deletion_policy = "ABANDON"
}

resource "google_sql_user" "this" {
  project         = var.project_id
  name            = local.database_username
  instance        = google_sql_database_instance.this.name
  password        = random_password.database.result
  deletion_policy = "ABANDON"
}
