"""Workload metrics: the node's sampler of its instances' process groups, the samples table,
the `vm.metrics` and `vm.recommend` tools, and the per-instance Prometheus series of a worker."""
