# Tributary on Google Kubernetes Engine: APIs, network, cluster, node pools.
#
# Storage (GCS) is in storage.tf, Workload Identity in iam.tf and the
# metadata database in database.tf. GKE's own cluster autoscaler scales the
# node pools between their bounds, and GKE installs the NVIDIA driver and
# device plugin on the GPU pool, so nothing is installed with Helm here.
#
# Naming: every Google resource is called "<name_prefix>-<component>";
# cluster-scoped names (node pools) are the bare component. Terraform
# addresses are snake_case and a module's single instance of a type is "this".

locals {
  cluster_name = "${var.name_prefix}-gke"

  labels = merge(var.labels, {
    project                 = "tributary"
    "tributary-name-prefix" = var.name_prefix
    managed-by              = "terraform"
  })

  apis = var.enable_apis ? toset([
    "binaryauthorization.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
  ]) : toset([])

  network_id          = var.create_network ? google_compute_network.this[0].id : "projects/${var.project_id}/global/networks/${var.network_name}"
  subnetwork_id       = var.create_network ? google_compute_subnetwork.this[0].id : "projects/${var.project_id}/regions/${var.region}/subnetworks/${var.subnetwork_name}"
  pods_range_name     = var.create_network ? "${var.name_prefix}-pods" : var.pods_range_name
  services_range_name = var.create_network ? "${var.name_prefix}-services" : var.services_range_name

  # Node labels and the GPU taint are the contract with helm/tributary.
  node_pool_labels = {
    system = {
      "tributary.dev/pool" = "system"
    }
    spark-cpu-spot = {
      "tributary.dev/pool"     = "spark-cpu"
      "tributary.dev/capacity" = "spot"
    }
    spark-cpu-on-demand = {
      "tributary.dev/pool"     = "spark-cpu"
      "tributary.dev/capacity" = "on-demand"
    }
    gpu = {
      "tributary.dev/pool"     = "gpu"
      "nvidia.com/gpu.present" = "true"
    }
  }

  # GKE spells the Kubernetes effect NoSchedule as NO_SCHEDULE.
  gpu_taint = {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  node_pools = {
    system = {
      machine_type   = var.system_node_pool.machine_type
      spot           = false
      zones          = var.node_zones
      min_node_count = var.system_node_pool.min_node_count
      max_node_count = var.system_node_pool.max_node_count
      disk_size_gb   = var.system_node_pool.disk_size_gb
      taints         = []
      accelerators   = []
    }
    spark-cpu-spot = {
      machine_type   = var.spark_cpu_node_pools.spot_machine_type
      spot           = true
      zones          = var.node_zones
      min_node_count = var.spark_cpu_node_pools.spot_min_node_count
      max_node_count = var.spark_cpu_node_pools.spot_max_node_count
      disk_size_gb   = var.spark_cpu_node_pools.disk_size_gb
      taints         = []
      accelerators   = []
    }
    spark-cpu-on-demand = {
      machine_type   = var.spark_cpu_node_pools.on_demand_machine_type
      spot           = false
      zones          = var.node_zones
      min_node_count = var.spark_cpu_node_pools.on_demand_min_node_count
      max_node_count = var.spark_cpu_node_pools.on_demand_max_node_count
      disk_size_gb   = var.spark_cpu_node_pools.disk_size_gb
      taints         = []
      accelerators   = []
    }
    gpu = {
      machine_type   = var.gpu_node_pool.machine_type
      spot           = var.gpu_node_pool.spot
      zones          = length(var.gpu_node_pool.zones) > 0 ? var.gpu_node_pool.zones : var.node_zones
      min_node_count = var.gpu_node_pool.min_node_count
      max_node_count = var.gpu_node_pool.max_node_count
      disk_size_gb   = var.gpu_node_pool.disk_size_gb
      taints         = [local.gpu_taint]
      accelerators = [{
        type               = var.gpu_node_pool.accelerator_type
        count              = var.gpu_node_pool.accelerator_count
        gpu_driver_version = var.gpu_node_pool.gpu_driver_version
      }]
    }
  }
}

resource "google_project_service" "this" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------
# Network (optional: bring your own with create_network = false)
# ---------------------------------------------------------------------------

resource "google_compute_network" "this" {
  count = var.create_network ? 1 : 0

  project                 = var.project_id
  name                    = "${var.name_prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.this]
}

resource "google_compute_subnetwork" "this" {
  count = var.create_network ? 1 : 0

  project                  = var.project_id
  name                     = "${var.name_prefix}-nodes"
  region                   = var.region
  network                  = google_compute_network.this[0].id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "${var.name_prefix}-pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "${var.name_prefix}-services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_1_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# GKE adds its own allow rules (control plane to nodes, intra-cluster) at
# priority 1000; everything else from outside is denied and logged.
resource "google_compute_firewall" "deny_ingress" {
  count = var.create_network ? 1 : 0

  project       = var.project_id
  name          = "${var.name_prefix}-deny-ingress"
  network       = google_compute_network.this[0].id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  count = var.create_network ? 1 : 0

  project = var.project_id
  name    = "${var.name_prefix}-router"
  region  = var.region
  network = google_compute_network.this[0].id
}

# Private nodes reach registries and APIs outside Google through Cloud NAT.
resource "google_compute_router_nat" "this" {
  count = var.create_network ? 1 : 0

  project                            = var.project_id
  name                               = "${var.name_prefix}-nat"
  router                             = google_compute_router.this[0].name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# ---------------------------------------------------------------------------
# Node service account: least-privilege identity of the VMs (workloads use
# their own Workload Identity service accounts, see iam.tf)
# ---------------------------------------------------------------------------

resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-nodes"
  display_name = "Tributary GKE nodes (${local.cluster_name})"

  depends_on = [google_project_service.this]
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/container.defaultNodeServiceAccount",
    "roles/artifactregistry.reader",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

# ---------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_21:False positive: resource_labels = local.labels is never empty, but scanned through envs/gke checkov cannot evaluate it because name_prefix has no default. tests/terraform checks the labels.
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Google Workspace domain; set rbac_security_group where one exists. Access is otherwise IAM plus Kubernetes RBAC.
  project  = var.project_id
  name     = local.cluster_name
  location = var.region

  network         = local.network_id
  subnetwork      = local.subnetwork_id
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = local.pods_range_name
    services_secondary_range_name = local.services_range_name
  }

  # Dataplane V2 enforces NetworkPolicy itself; the Calico-based
  # network_policy add-on must stay disabled alongside it.
  datapath_provider = "ADVANCED_DATAPATH"
  network_policy {
    enabled = false
  }

  # Node pools are managed below; the default pool is created and removed.
  remove_default_node_pool = true
  initial_node_count       = 1

  min_master_version = var.kubernetes_version
  release_channel {
    channel = var.release_channel
  }

  deletion_protection = var.deletion_protection

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "admin-${cidr_blocks.key}"
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  dynamic "authenticator_groups_config" {
    for_each = var.rbac_security_group == null ? [] : [var.rbac_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true
  enable_legacy_abac          = false

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  dynamic "database_encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      state    = "ENCRYPTED"
      key_name = database_encryption.value
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }

  addons_config {
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
    horizontal_pod_autoscaling {
      disabled = false
    }
    http_load_balancing {
      disabled = false
    }
  }

  # Nodes of the throwaway default pool use the least-privilege account too.
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  resource_labels = local.labels

  lifecycle {
    ignore_changes = [node_config]

    precondition {
      condition     = var.create_network || alltrue([for v in [var.network_name, var.subnetwork_name, var.pods_range_name, var.services_range_name] : v != null])
      error_message = "With create_network = false, set network_name, subnetwork_name, pods_range_name and services_range_name."
    }
  }

  depends_on = [google_project_service.this, google_project_iam_member.nodes]
}

# ---------------------------------------------------------------------------
# Node pools: system, spark-cpu (spot + on-demand) and gpu
# ---------------------------------------------------------------------------

resource "google_container_node_pool" "this" {
  for_each = local.node_pools

  project        = var.project_id
  name           = each.key
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = length(each.value.zones) > 0 ? each.value.zones : null

  initial_node_count = each.value.min_node_count > 0 ? 1 : 0

  # Totals across zones. ANY lets spot and GPU pools use whichever zone has
  # capacity; BALANCED spreads the on-demand pools.
  autoscaling {
    total_min_node_count = each.value.min_node_count
    total_max_node_count = each.value.max_node_count
    location_policy      = each.value.spot || length(each.value.accelerators) > 0 ? "ANY" : "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = each.value.machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = each.value.disk_size_gb
    spot            = each.value.spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    labels          = local.node_pool_labels[each.key]
    resource_labels = local.labels

    metadata = {
      disable-legacy-endpoints = "true"
    }

    dynamic "taint" {
      for_each = each.value.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    dynamic "guest_accelerator" {
      for_each = each.value.accelerators
      content {
        type  = guest_accelerator.value.type
        count = guest_accelerator.value.count
        gpu_driver_installation_config {
          gpu_driver_version = guest_accelerator.value.gpu_driver_version
        }
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    ignore_changes = [initial_node_count]
  }
}
