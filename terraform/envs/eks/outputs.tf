output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.platform.cluster_name
}

output "kubeconfig_command" {
  description = "Run this to point kubectl at the cluster."
  value       = module.platform.kubeconfig_command
}

output "bucket_names" {
  description = "S3 buckets by logical name."
  value       = module.platform.bucket_names
}

output "workload_role_arns" {
  description = "IRSA role of each workload (spark, airflow, mlflow)."
  value       = module.platform.workload_role_arns
}

output "database_host" {
  description = "RDS PostgreSQL endpoint of the Airflow and MLflow metadata."
  value       = module.platform.database_host
}

output "airflow" {
  description = "How to reach the Airflow UI: the services are ClusterIP, so port-forward, then open the URL."
  value = {
    port_forward = "kubectl -n ${local.platform_namespace} port-forward svc/${var.airflow_service.name} ${var.airflow_service.port}:${var.airflow_service.port}"
    url          = "http://localhost:${var.airflow_service.port}"
  }
}

output "mlflow" {
  description = "How to reach the MLflow UI: port-forward, then open the URL and sign in as admin with the password the command prints."
  value = {
    port_forward   = "kubectl -n ${local.platform_namespace} port-forward svc/${var.mlflow_service.name} ${var.mlflow_service.port}:${var.mlflow_service.port}"
    url            = "http://localhost:${var.mlflow_service.port}"
    admin_password = "kubectl -n ${local.platform_namespace} get secret ${local.mlflow_auth_secret} -o jsonpath='{.data.password}' | base64 -d"
  }
}

output "chart_installed" {
  description = "Whether this apply installed the Tributary chart."
  value       = var.install_chart
}
