output "namespace" {
  description = "Namespace the chart is installed in."
  value       = kubernetes_namespace_v1.platform.metadata[0].name
}

output "release_name" {
  description = "Helm release name of the chart."
  value       = helm_release.tributary.name
}

output "mlflow_auth_secret" {
  description = "Secret holding MLflow's admin password (key: password)."
  value       = kubernetes_secret_v1.mlflow_auth.metadata[0].name
}
