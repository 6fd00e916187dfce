module ipfix-antrea/benchmarks/goipfix_collect

go 1.26.0

require github.com/vmware/go-ipfix v0.17.0

require (
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/pion/dtls/v2 v2.2.12 // indirect
	github.com/pion/logging v0.2.2 // indirect
	github.com/pion/transport/v2 v2.2.10 // indirect
	golang.org/x/crypto v0.53.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.46.0 // indirect
	k8s.io/klog/v2 v2.140.0 // indirect
)
