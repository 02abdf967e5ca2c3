terraform {
  required_version = ">= 1.10"

  # Partial configuration: pass the rest with `-backend-config=backend.hcl`
  # (see backend.hcl.example). S3-native locking needs Terraform/OpenTofu 1.10.
  backend "s3" {}

  # Exact pins; `terraform init` records their checksums in
  # .terraform.lock.hcl, which should be committed with the first deploy.
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.59.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "3.1.2"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "3.2.1"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
    # Required by terraform-aws-modules/eks; pinned here so the root decides.
    tls = {
      source  = "hashicorp/tls"
      version = "4.1.0"
    }
    time = {
      source  = "hashicorp/time"
      version = "0.13.1"
    }
  }
}
