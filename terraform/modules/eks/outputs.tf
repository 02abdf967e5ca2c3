output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API server."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded CA certificate of the cluster."
  value       = module.eks.cluster_certificate_authority_data
}

output "region" {
  description = "AWS region of the cluster."
  value       = local.region
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "aws eks update-kubeconfig --region ${local.region} --name ${module.eks.cluster_name}"
}

output "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (IRSA)."
  value       = module.eks.oidc_provider_arn
}

output "vpc_id" {
  description = "VPC the cluster runs in."
  value       = local.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the nodes and the database."
  value       = local.private_subnet_ids
}

output "node_group_labels" {
  description = "Kubernetes labels of each managed node group (the chart's node selectors)."
  value       = local.node_group_labels
}

output "bucket_names" {
  description = "S3 bucket names by logical name: lake, checkpoints, mlflow_artifacts, spark_events, airflow_logs."
  value       = { for k, b in aws_s3_bucket.this : k => b.bucket }
}

output "bucket_arns" {
  description = "S3 bucket ARNs by logical name."
  value       = { for k, b in aws_s3_bucket.this : k => b.arn }
}

output "access_log_bucket_name" {
  description = "Bucket receiving S3 server access logs of the platform buckets."
  value       = aws_s3_bucket.access_logs.bucket
}

output "kms_key_arn" {
  description = "KMS key encrypting the buckets and the database."
  value       = aws_kms_key.this.arn
}

output "workload_role_arns" {
  description = "IRSA role ARN of each workload: spark, airflow, mlflow."
  value       = { for k, r in aws_iam_role.workload : k => r.arn }
}

output "service_accounts" {
  description = "Namespace and name of each workload's Kubernetes service account, as trusted by its role."
  value       = { for k, w in local.workloads : k => { namespace = w.namespace, name = w.service_account } }
}

output "service_account_annotations" {
  description = "Annotations the chart puts on each workload's service account."
  value       = { for k, r in aws_iam_role.workload : k => { "eks.amazonaws.com/role-arn" = r.arn } }
}

output "database_host" {
  description = "Hostname of the RDS PostgreSQL metadata database."
  value       = aws_db_instance.this.address
}

output "database_port" {
  description = "Port of the metadata database."
  value       = aws_db_instance.this.port
}

output "database_username" {
  description = "Master user of the metadata database."
  value       = aws_db_instance.this.username
}

output "database_password" {
  description = "Password of the metadata database user."
  value       = random_password.database.result
  sensitive   = true
}

output "database_names" {
  description = "Databases of Airflow and MLflow on the metadata instance."
  value       = local.database_names
}

output "database_create_databases" {
  description = "True when the chart must create missing databases itself (RDS only creates the first one)."
  value       = true
}
