"""Private endpoint connections that consumers open to a cluster's Private Link Service."""
