"""Consumer connectivity: which Azure services can reach a cluster's Private Link Service, what each must create,
the connections we expect from them, and the DNS they need."""
