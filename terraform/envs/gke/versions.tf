terraform {
  required_version = ">= 1.10"

  # Partial configuration: pass the rest with `-backend-config=backend.hcl`
  # (see backend.hcl.example).
  backend "gcs" {}

  # Exact pins; `terraform init` records their checksums in
  # .terraform.lock.hcl, which should be committed with the first deploy.
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "7.46.1"
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
  }
}
