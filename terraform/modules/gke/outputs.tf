output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.this.name
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = "https://${google_container_cluster.this.endpoint}"
}

output "cluster_ca_certificate" {
  description = "Base64-encoded CA certificate of the cluster."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "region" {
  description = "Region of the cluster."
  value       = var.region
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --region ${var.region} --project ${var.project_id}"
}

output "network_id" {
  description = "VPC network the cluster and Cloud SQL use."
  value       = local.network_id
}

output "node_pool_labels" {
  description = "Kubernetes labels of each node pool (the chart's node selectors)."
  value       = local.node_pool_labels
}

output "bucket_names" {
  description = "GCS bucket names by logical name: lake, checkpoints, mlflow_artifacts, spark_events, airflow_logs."
  value       = { for k, b in google_storage_bucket.this : k => b.name }
}

output "access_log_bucket_name" {
  description = "Bucket receiving GCS usage logs of the platform buckets."
  value       = google_storage_bucket.access_logs.name
}

output "workload_service_account_emails" {
  description = "Google service account email of each workload: spark, airflow, mlflow."
  value       = { for k, sa in google_service_account.workload : k => sa.email }
}

output "service_accounts" {
  description = "Namespace and name of each workload's Kubernetes service account, as bound by Workload Identity."
  value       = { for k, w in local.workloads : k => { namespace = w.namespace, name = w.service_account } }
}

output "service_account_annotations" {
  description = "Annotations the chart puts on each workload's service account."
  value       = { for k, sa in google_service_account.workload : k => { "iam.gke.io/gcp-service-account" = sa.email } }
}

output "database_host" {
  description = "Private IP of the Cloud SQL metadata database."
  value       = google_sql_database_instance.this.private_ip_address
}

output "database_port" {
  description = "Port of the metadata database."
  value       = 5432
}

output "database_instance_connection_name" {
  description = "Cloud SQL connection name (project:region:instance), for the Cloud SQL Auth Proxy if you prefer it to private IP."
  value       = google_sql_database_instance.this.connection_name
}

output "database_username" {
  description = "User of the metadata database."
  value       = google_sql_user.this.name
}

output "database_password" {
  description = "Password of the metadata database user."
  value       = random_password.database.result
  sensitive   = true
}

output "database_names" {
  description = "Databases of Airflow and MLflow on the metadata instance."
  value       = { for k, d in google_sql_database.this : k => d.name }
}

output "database_create_databases" {
  description = "True when the chart must create missing databases itself; Cloud SQL databases are created here."
  value       = false
}
