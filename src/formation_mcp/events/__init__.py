"""Events: one durable record per state change of a workload resource (instances, packs,
nodes, operations), listed and watched through EventsService and the vm.events tool."""
