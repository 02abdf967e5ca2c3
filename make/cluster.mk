# The local Kubernetes cluster (issue 7): a real cluster on this host for machines with no Docker (CI here), built
# from registries and cached by version in ~/.cache/tributary. `make kind-up` stays the path where Docker runs.
# Both install the same chart (values-kind.yaml) with the same profile (kind) and DAGs. Docs: docs/kubernetes.md.

CLUSTER_PY := python3 k8s/cluster/cluster.py
export KUBECONFIG_LOCAL := $(CURDIR)/var/cluster/kubeconfig

.PHONY: host-packages cluster-build cluster-up cluster-down cluster-status cluster-install cluster-run cluster-promote images images-build docker-images

host-packages: ## install the Debian packages the local cluster and the image builds need (apt; root)
	@k8s/cluster/host-packages.sh

cluster-build: host-packages ## build the local cluster's binaries from Go modules (cached by version; ~9 min cold)
	@k8s/cluster/build.sh

cluster-up: cluster-build ## start a 3-node Kubernetes 1.35 on this host (root); writes var/cluster/kubeconfig
	@$(CLUSTER_PY) up >/dev/null
	@echo "cluster-up: ready; export KUBECONFIG=$(KUBECONFIG_LOCAL)"

cluster-down: ## stop the local cluster and undo its host changes (mounts, links, iptables, sysctls)
	@$(CLUSTER_PY) down

cluster-status: ## show the local cluster's processes and nodes
	@$(CLUSTER_PY) status

# Cold, the Go builds are CPU-bound and the Debian bases mostly downloads and dpkg: they run side by side; the
# images then need both (the S3 store's and spark-operator's images hold binaries from build.sh).
images-build: setup host-packages ## build (with the cluster's binaries) and smoke-run every image with buildah; cached
	@k8s/cluster/build.sh & go=$$!; k8s/cluster/images.sh bases; bases=$$?; wait $$go || exit 1; \
		[ $$bases -eq 0 ] || exit 1; k8s/cluster/images.sh build smoke

images: images-build ## images-build, then push them to the local cluster's registry (make cluster-up first)
	@if curl -fsS http://localhost:5001/v2/ >/dev/null 2>&1; then k8s/cluster/images.sh push; \
	else echo "images: built; no local registry running (make cluster-up), so nothing pushed"; fi

# tests/cluster start the cluster, push the images and install the chart themselves; they need these built. The
# background half of `make test` builds them first (scripts/test.sh), while the rest already runs: a cold build is
# mostly downloads and dpkg, which leave the cores to the tests.
TEST_BACKGROUND_PREREQS += images-build

docker-images: ## build the spark, airflow and mlflow images with docker (IMAGE_PREFIX, IMAGE_TAG), for kind and registries
	@for target in spark airflow mlflow; do \
		echo "docker-images: $(IMAGE_PREFIX)/$$target:$(IMAGE_TAG)"; \
		docker build --target $$target -t $(IMAGE_PREFIX)/$$target:$(IMAGE_TAG) . || exit 1; \
	done

cluster-install: render ## install helm/tributary on the local cluster (values-kind.yaml + the local images)
	@PATH=$(CURDIR)/var/cluster/bin:$$PATH KUBECONFIG=$(KUBECONFIG_LOCAL) k8s/install.sh kind --local-cluster

cluster-run: images-build k8s-tools ## on the local cluster (cluster-up first): images, chart, fraud_pipeline via Airflow's REST API, stream, summary
	$(RUN) python scripts/render_k8s.py --profile kind
	PATH=$(CURDIR)/var/cluster/bin:$$PATH $(RUN) python scripts/cluster_run.py $(if $(ROWS),--rows $(ROWS))

cluster-promote: ## point @champion at a registered model version by hand on the local cluster: make cluster-promote VERSION=N
	@[ -n "$(VERSION)" ] || { echo "cluster-promote: set VERSION=N (a registered version of tributary-fraud)"; exit 2; }
	PATH=$(CURDIR)/var/cluster/bin:$$PATH $(RUN) python scripts/cluster_run.py --promote-version $(VERSION)
