// Command goexporter sends Antrea Flow Aggregator-style IPFIX records to a collector with
// go-ipfix, the library Antrea itself exports with, and writes down what it sent.
//
// It is the peer of tests/test_goipfix_interop.py: the test starts ipfix-collect, runs this
// program against it over UDP, TCP or TLS, and compares every document the collector wrote with
// the -expected file.
//
// What goes on the wire is go-ipfix's doing, not ours: its registry (IANA, Antrea's PEN 56506,
// the RFC 5103 reverse elements under PEN 29305) gives every element's id, type and length; its
// exporting process assigns the template ids (256, 257, 258), frames one set per message and
// counts sequence numbers; its buffered exporter packs as many data records of one template into
// a message as the message size allows, as the Flow Aggregator's exporter does (§2.4).
//
// Three templates, in the Flow Aggregator's element order (Antrea's pkg/flowaggregator/infoelements):
// aggregate mode for IPv4 (256) and IPv6 (257), with includeK8sUIDs on so that the fixed-length
// octetArray UUID elements are there too (each after the name elements it belongs to; the facts
// name the first few placements, the rest follow the same rule), and proxy mode for IPv4 (258), the only one with an
// unsigned32 (originalObservationDomainId). A real Flow Aggregator runs one mode and sends only
// its IPv4/IPv6 pair; one session with both modes covers every element type the FA exports.
//
// The -expected file has one JSON object per data record, in the order the records were handed
// to the exporter: exactly the "ipfix" object that ipfix-collect should write for it
// (docs/collector.md, docs/json.md), that is "version" 10, "flowset_id" = the template id, and
// every element by its registry name: integers as numbers, addresses as canonical text,
// dateTimeSeconds as ISO 8601 UTC ("2024-05-01T12:00:00Z"), octetArray as lowercase hex.
// The buffered exporter keeps one message buffer per template, so records of different
// templates may reach the collector in another order than the file's; within a template the
// order is kept.
package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/vmware/go-ipfix/pkg/entities"
	"github.com/vmware/go-ipfix/pkg/exporter"
	"github.com/vmware/go-ipfix/pkg/registry"
)

const (
	iana    = registry.IANAEnterpriseID         // 0
	antrea  = registry.AntreaEnterpriseID       // 56506
	reverse = registry.IANAReversedEnterpriseID // 29305
)

type element struct {
	name       string
	enterprise uint32
}

func names(enterprise uint32, list string) []element {
	var out []element
	for _, name := range strings.Fields(list) {
		out = append(out, element{name, enterprise})
	}
	return out
}

func concat(parts ...[]element) []element {
	var out []element
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// The Flow Aggregator's templates, part by part (antrea-facts.md §1.4).
var (
	ianaCommon = names(iana, `flowStartSeconds flowEndSeconds flowEndReason sourceTransportPort
		destinationTransportPort protocolIdentifier packetTotalCount octetTotalCount
		packetDeltaCount octetDeltaCount`)
	ianaIPv4     = names(iana, "sourceIPv4Address destinationIPv4Address")
	ianaIPv6     = names(iana, "sourceIPv6Address destinationIPv6Address")
	reverseCount = names(reverse, `reversePacketTotalCount reverseOctetTotalCount
		reversePacketDeltaCount reverseOctetDeltaCount`)
	// The Antrea part with includeK8sNames (the default); withUIDs adds each *UUID element
	// after the name elements it belongs to.
	antreaNames = func(withUIDs bool) []element {
		uid := func(name string) string {
			if withUIDs {
				return name
			}
			return ""
		}
		return names(antrea, strings.Join([]string{
			"sourcePodName sourcePodNamespace", uid("sourcePodUUID"),
			"sourceNodeName", uid("sourceNodeUUID"),
			"destinationPodName destinationPodNamespace", uid("destinationPodUUID"),
			"destinationNodeName", uid("destinationNodeUUID"),
			"destinationServicePort destinationServicePortName", uid("destinationServiceUUID"),
			"ingressNetworkPolicyName ingressNetworkPolicyNamespace", uid("ingressNetworkPolicyUUID"),
			`ingressNetworkPolicyType ingressNetworkPolicyRuleName ingressNetworkPolicyRuleAction
			egressNetworkPolicyName egressNetworkPolicyNamespace`, uid("egressNetworkPolicyUUID"),
			`egressNetworkPolicyType egressNetworkPolicyRuleName egressNetworkPolicyRuleAction
			tcpState flowType egressName`, uid("egressUUID"),
			"egressIP egressNodeName", uid("egressNodeUUID"),
			"proxySnatPort",
		}, " "))
	}
	antreaIPv4 = names(antrea, "proxySnatIPv4 destinationClusterIPv4 destinationServiceIPv4")
	antreaIPv6 = names(antrea, "proxySnatIPv6 destinationClusterIPv6 destinationServiceIPv6")
	// Aggregate mode only: per-Node counters, interleaved source/destination.
	aggregate = names(antrea, `octetDeltaCountFromSourceNode octetDeltaCountFromDestinationNode
		octetTotalCountFromSourceNode octetTotalCountFromDestinationNode
		packetDeltaCountFromSourceNode packetDeltaCountFromDestinationNode
		packetTotalCountFromSourceNode packetTotalCountFromDestinationNode
		reverseOctetDeltaCountFromSourceNode reverseOctetDeltaCountFromDestinationNode
		reverseOctetTotalCountFromSourceNode reverseOctetTotalCountFromDestinationNode
		reversePacketDeltaCountFromSourceNode reversePacketDeltaCountFromDestinationNode
		reversePacketTotalCountFromSourceNode reversePacketTotalCountFromDestinationNode
		flowEndSecondsFromSourceNode flowEndSecondsFromDestinationNode
		throughput throughputFromSourceNode throughputFromDestinationNode
		reverseThroughput reverseThroughputFromSourceNode reverseThroughputFromDestinationNode`)
	labelsAndCluster = names(antrea, "sourcePodLabels destinationPodLabels clusterId")
	proxy            = names(iana, `originalObservationDomainId originalExporterIPv4Address
		originalExporterIPv6Address flowDirection`)

	templates = [][]element{
		concat(ianaCommon, ianaIPv4, reverseCount, antreaNames(true), antreaIPv4, aggregate, labelsAndCluster),
		concat(ianaCommon, ianaIPv6, reverseCount, antreaNames(true), antreaIPv6, aggregate, labelsAndCluster),
		concat(ianaCommon, ianaIPv4, reverseCount, antreaNames(false), antreaIPv4, labelsAndCluster, proxy),
	}
)

// ------------------------------------------------------------------------------------- values

// dnsName is a name of exactly n characters (n <= 253): DNS labels of 63 characters joined by
// dots, the longest a Pod, Node or NetworkPolicy name may be (a DNS subdomain), or for n <= 63
// a single label, the longest Namespace name.
func dnsName(prefix string, n int) string {
	b := []byte(prefix)
	for len(b) < n {
		if len(b)%64 == 63 {
			b = append(b, '.')
		} else {
			b = append(b, "abcdefghijklmnopqrstuvwxyz0123456789"[len(b)%36])
		}
	}
	return string(b)
}

// uuid is a deterministic 16-octet value standing for a Kubernetes UID.
func uuid(what string, i int) []byte {
	h := fnv.New128a()
	fmt.Fprintf(h, "%s/%d", what, i)
	return h.Sum(nil)
}

func ipv4(a, b, c, d int) net.IP { return net.IPv4(byte(a), byte(b), byte(c), byte(d)).To4() }

func ipv6(format string, args ...any) net.IP { return net.ParseIP(fmt.Sprintf(format, args...)) }

type seconds uint32 // a dateTimeSeconds value

const baseTime = 1714564800 // 2024-05-01T12:00:00Z

// values returns every element's value for record i, for all templates. Five flow profiles
// cycle (i%5): Pod to Pod on one Node, Pod to Service across Nodes, Pod to external through an
// Egress, the longest names Kubernetes allows, and a flow from outside with every string empty
// and every address unset (what Antrea sends when it knows nothing: "", 0.0.0.0, ::).
func values(i int) map[string]any {
	profile := i % 5
	packets := uint64(10 + i*7)
	start := seconds(baseTime + i*5)
	end := start + seconds(60+i%30)
	v := map[string]any{
		"flowStartSeconds":         start,
		"flowEndSeconds":           end,
		"flowEndReason":            uint8(1 + i%3),
		"sourceTransportPort":      uint16(30000 + i),
		"destinationTransportPort": uint16([]int{8080, 443, 53, 8443, 80}[profile]),
		"protocolIdentifier":       uint8([]int{6, 6, 17, 6, 6}[profile]),
		"packetTotalCount":         packets,
		"octetTotalCount":          packets * 1420,
		"packetDeltaCount":         packets / 2,
		"octetDeltaCount":          packets / 2 * 1420,
		"sourceIPv4Address":        ipv4(10, 244, 1+i%3, 2+i%250),
		"destinationIPv4Address":   ipv4(10, 244, 2, 10+i%200),
		"sourceIPv6Address":        ipv6("fd00:10:244:1::%x", 2+i),
		"destinationIPv6Address":   ipv6("fd00:10:244:2::%x", 0x100+i),
		"reversePacketTotalCount":  packets - 3,
		"reverseOctetTotalCount":   (packets - 3) * 64,
		"reversePacketDeltaCount":  (packets - 3) / 2,
		"reverseOctetDeltaCount":   (packets - 3) / 2 * 64,

		"sourcePodName":                  fmt.Sprintf("frontend-7d9f8b6c5-x%04d", i),
		"sourcePodNamespace":             "default",
		"sourceNodeName":                 "k8s-node-worker-1",
		"destinationPodName":             fmt.Sprintf("backend-5c8d7b9f4d-%05d", i),
		"destinationPodNamespace":        "default",
		"destinationNodeName":            "k8s-node-worker-1",
		"destinationServicePort":         uint16(0),
		"destinationServicePortName":     "",
		"ingressNetworkPolicyName":       "allow-frontend",
		"ingressNetworkPolicyNamespace":  "default",
		"ingressNetworkPolicyType":       registry.PolicyTypeAntreaNetworkPolicy,
		"ingressNetworkPolicyRuleName":   "ingress-allow-8080",
		"ingressNetworkPolicyRuleAction": registry.NetworkPolicyRuleActionAllow,
		"egressNetworkPolicyName":        "",
		"egressNetworkPolicyNamespace":   "",
		"egressNetworkPolicyType":        uint8(0),
		"egressNetworkPolicyRuleName":    "",
		"egressNetworkPolicyRuleAction":  registry.NetworkPolicyRuleActionNoAction,
		"tcpState":                       "ESTABLISHED",
		"flowType":                       registry.FlowTypeIntraNode,
		"egressName":                     "",
		"egressIP":                       "",
		"egressNodeName":                 "",
		"proxySnatPort":                  uint16(0),
		"proxySnatIPv4":                  ipv4(0, 0, 0, 0),
		"proxySnatIPv6":                  net.IPv6zero,
		"destinationClusterIPv4":         ipv4(0, 0, 0, 0),
		"destinationClusterIPv6":         net.IPv6zero,
		"destinationServiceIPv4":         ipv4(0, 0, 0, 0),
		"destinationServiceIPv6":         net.IPv6zero,

		"flowEndSecondsFromSourceNode":         end,
		"flowEndSecondsFromDestinationNode":    end - 1,
		"throughput":                           packets / 2 * 1420 * 8 / 60,
		"throughputFromSourceNode":             packets / 2 * 1420 * 8 / 60,
		"throughputFromDestinationNode":        packets / 2 * 1400 * 8 / 60,
		"reverseThroughput":                    (packets - 3) / 2 * 64 * 8 / 60,
		"reverseThroughputFromSourceNode":      (packets - 3) / 2 * 64 * 8 / 60,
		"reverseThroughputFromDestinationNode": (packets - 3) / 2 * 60 * 8 / 60,

		"sourcePodLabels":      `{"app":"frontend","pod-template-hash":"7d9f8b6c5"}`,
		"destinationPodLabels": "{}",
		"clusterId":            "c0ffee00-1234-4abc-8def-0123456789ab",

		"originalObservationDomainId": uint32(2166136261 + i), // an Agent's ODID (FNV-1 of its Node name)
		"originalExporterIPv4Address": ipv4(192, 168, 77, 1+i%250),
		"originalExporterIPv6Address": net.IPv6zero,
		"flowDirection":               uint8([]int{0, 1, 0xff}[i%3]),
	}
	for _, name := range []string{"sourcePodUUID", "destinationPodUUID", "sourceNodeUUID",
		"destinationNodeUUID", "destinationServiceUUID", "ingressNetworkPolicyUUID",
		"egressNetworkPolicyUUID", "egressUUID", "egressNodeUUID"} {
		v[name] = uuid(name, i)
	}
	// The per-Node counters: what the source and destination Node reported, slightly apart.
	for _, dir := range []string{"", "reverse"} {
		for _, kind := range []string{"PacketTotalCount", "OctetTotalCount", "PacketDeltaCount", "OctetDeltaCount"} {
			name := dir + kind
			if dir == "" {
				name = strings.ToLower(kind[:1]) + kind[1:]
			}
			v[name+"FromSourceNode"] = v[name].(uint64)
			v[name+"FromDestinationNode"] = v[name].(uint64) - 1
		}
	}

	switch profile {
	case 1: // Pod to Service on another Node, under a K8s NetworkPolicy, with labels.
		v["sourcePodNamespace"] = "monitoring"
		v["sourcePodName"] = fmt.Sprintf("prometheus-k8s-%d", i%3)
		v["destinationPodNamespace"] = "kube-system"
		v["destinationPodName"] = fmt.Sprintf("coredns-5d78c9869d-%05d", i)
		v["destinationNodeName"] = "ip-10-0-12-34.eu-west-1.compute.internal"
		v["destinationServicePort"] = uint16(443)
		v["destinationServicePortName"] = "kube-system/kube-dns:metrics"
		v["ingressNetworkPolicyName"] = "allow-prometheus"
		v["ingressNetworkPolicyNamespace"] = "kube-system"
		v["ingressNetworkPolicyType"] = registry.PolicyTypeK8sNetworkPolicy
		v["ingressNetworkPolicyRuleName"] = ""
		v["flowType"] = registry.FlowTypeInterNode
		v["destinationClusterIPv4"] = ipv4(10, 96, 0, 10)
		v["destinationServiceIPv4"] = ipv4(10, 96, 0, 10)
		v["destinationClusterIPv6"] = ipv6("fd00:10:96::a")
		v["destinationServiceIPv6"] = ipv6("fd00:10:96::a")
		v["tcpState"] = []string{"ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT"}[i%3]
		v["sourcePodLabels"] = `{"app.kubernetes.io/name":"prometheus","statefulset.kubernetes.io/pod-name":"prometheus-k8s-0"}`
		v["destinationPodLabels"] = `{"k8s-app":"kube-dns","pod-template-hash":"5d78c9869d"}`
	case 2: // Pod to an external address over UDP, SNATed by an Egress on another Node.
		v["sourcePodNamespace"] = "payments-prod"
		v["sourcePodName"] = fmt.Sprintf("ledger-worker-6b9d4f7c8-%05d", i)
		v["destinationPodName"] = ""
		v["destinationPodNamespace"] = ""
		v["destinationNodeName"] = ""
		v["destinationIPv4Address"] = ipv4(203, 0, 113, i%256)
		v["destinationIPv6Address"] = ipv6("2001:db8:53::%x", i)
		v["ingressNetworkPolicyName"] = ""
		v["ingressNetworkPolicyNamespace"] = ""
		v["ingressNetworkPolicyType"] = uint8(0)
		v["ingressNetworkPolicyRuleName"] = ""
		v["ingressNetworkPolicyRuleAction"] = registry.NetworkPolicyRuleActionNoAction
		v["egressNetworkPolicyName"] = "acnp-egress-dns"
		v["egressNetworkPolicyType"] = registry.PolicyTypeAntreaClusterNetworkPolicy
		v["egressNetworkPolicyRuleName"] = "allow-dns"
		v["egressNetworkPolicyRuleAction"] = registry.NetworkPolicyRuleActionAllow
		v["tcpState"] = ""
		v["flowType"] = registry.FlowTypeToExternal
		v["egressName"] = "egress-payments"
		v["egressIP"] = "172.18.0.42"
		v["egressNodeName"] = "k8s-node-egress-0"
		v["proxySnatPort"] = uint16(61000 + i%4000)
		v["proxySnatIPv4"] = ipv4(172, 18, 0, 42)
		v["proxySnatIPv6"] = ipv6("fd00:172:18::2a")
	case 3: // The longest names Kubernetes allows; labels long enough for the 3-octet length.
		v["sourcePodNamespace"] = dnsName("ns-", 63)
		v["sourcePodName"] = dnsName(fmt.Sprintf("pod%d-", i), 253)
		v["sourceNodeName"] = dnsName("node-", 253)
		v["destinationPodName"] = dnsName(fmt.Sprintf("dst%d-", i), 253)
		v["ingressNetworkPolicyName"] = dnsName("acnp-", 253)
		v["ingressNetworkPolicyNamespace"] = ""
		v["ingressNetworkPolicyType"] = registry.PolicyTypeAntreaClusterNetworkPolicy
		v["ingressNetworkPolicyRuleAction"] = registry.NetworkPolicyRuleActionDrop
		v["tcpState"] = "SYN_SENT"
		v["sourcePodLabels"] = `{"app.kubernetes.io/component":"api-gateway-internal-traffic",` +
			`"app.kubernetes.io/instance":"gateway-eu-west-1-production-blue",` +
			`"app.kubernetes.io/managed-by":"helm","app.kubernetes.io/name":"gateway",` +
			`"app.kubernetes.io/part-of":"storefront","app.kubernetes.io/version":"v2.31.4-rc.1"}`
	case 4: // From outside the cluster: nothing known, so empty strings and unset addresses.
		for name, value := range v {
			switch value.(type) {
			case string:
				v[name] = ""
			case []byte:
				v[name] = make([]byte, 16)
			}
		}
		v["sourceIPv4Address"] = ipv4(198, 51, 100, i%256)
		v["sourceIPv6Address"] = ipv6("2001:db8:100::%x", i)
		v["ingressNetworkPolicyType"] = uint8(0)
		v["ingressNetworkPolicyRuleAction"] = registry.NetworkPolicyRuleActionNoAction
		v["flowType"] = registry.FlowTypeFromExternal
		v["octetTotalCount"] = ^uint64(0) // the counter's whole range
		v["originalExporterIPv4Address"] = ipv4(0, 0, 0, 0)
	}
	return v
}

// withValue is the go-ipfix element carrying value, by the registry's data type for the element.
func withValue(ie *entities.InfoElement, value any) (entities.InfoElementWithValue, error) {
	var ok bool
	var out entities.InfoElementWithValue
	switch ie.DataType {
	case entities.Unsigned8:
		var x uint8
		x, ok = value.(uint8)
		out = entities.NewUnsigned8InfoElement(ie, x)
	case entities.Unsigned16:
		var x uint16
		x, ok = value.(uint16)
		out = entities.NewUnsigned16InfoElement(ie, x)
	case entities.Unsigned32:
		var x uint32
		x, ok = value.(uint32)
		out = entities.NewUnsigned32InfoElement(ie, x)
	case entities.Unsigned64:
		var x uint64
		x, ok = value.(uint64)
		out = entities.NewUnsigned64InfoElement(ie, x)
	case entities.DateTimeSeconds:
		var x seconds
		x, ok = value.(seconds)
		out = entities.NewDateTimeSecondsInfoElement(ie, uint32(x))
	case entities.Ipv4Address, entities.Ipv6Address:
		var x net.IP
		x, ok = value.(net.IP)
		out = entities.NewIPAddressInfoElement(ie, x)
	case entities.String:
		var x string
		x, ok = value.(string)
		out = entities.NewStringInfoElement(ie, x)
	case entities.OctetArray:
		var x []byte
		x, ok = value.([]byte)
		out = entities.NewOctetArrayInfoElement(ie, x)
	default:
		return nil, fmt.Errorf("%s: data type %d not used by this program", ie.Name, ie.DataType)
	}
	if !ok {
		return nil, fmt.Errorf("%s: value %#v does not suit data type %d", ie.Name, value, ie.DataType)
	}
	return out, nil
}

// rendered is value as ipfix-collect writes it in JSON (docs/json.md).
func rendered(ie *entities.InfoElement, value any) any {
	switch x := value.(type) {
	case seconds:
		return time.Unix(int64(x), 0).UTC().Format("2006-01-02T15:04:05Z")
	case net.IP:
		if ie.DataType == entities.Ipv4Address {
			return x.To4().String()
		}
		return x.To16().String() // canonical text (RFC 5952), as Python's ipaddress prints it
	case []byte:
		return hex.EncodeToString(x)
	}
	return value
}

// ------------------------------------------------------------------------------------- export

func readFile(path string) []byte {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	return data
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("goexporter: ")
	addr := flag.String("addr", "127.0.0.1:4739", "collector address, host:port")
	proto := flag.String("proto", "tcp", "transport: udp or tcp")
	useTLS := flag.Bool("tls", false, "TLS over TCP (go-ipfix's TLSClientConfig)")
	caPath := flag.String("ca", "", "PEM file of the CA that signed the collector's certificate (with -tls)")
	certPath := flag.String("cert", "", "PEM client certificate, for mutual TLS (with -tls)")
	keyPath := flag.String("key", "", "PEM key of -cert")
	count := flag.Int("records", 300, "number of data records to send")
	domain := flag.Uint("domain", 0xA5A5_0001, "observation domain id")
	pathMTU := flag.Int("path-mtu", 1500, "UDP path MTU: go-ipfix keeps messages within it")
	pace := flag.Duration("pace", 0, "pause after each data record (keeps UDP within the collector's reach)")
	expectedPath := flag.String("expected", "", "write the records sent here, as JSON lines")
	flag.Parse()
	if flag.NArg() != 0 || (*proto != "udp" && *proto != "tcp") || (*useTLS && *proto != "tcp") {
		flag.Usage()
		os.Exit(2)
	}

	registry.LoadRegistry()

	input := exporter.ExporterInput{
		CollectorAddress:    *addr,
		CollectorProtocol:   *proto,
		ObservationDomainID: uint32(*domain),
		TempRefTimeout:      600, // the Flow Aggregator's default; the run ends long before
		PathMTU:             *pathMTU,
	}
	if *useTLS {
		input.TLSClientConfig = &exporter.ExporterTLSClientConfig{
			CAData:   readFile(*caPath),
			CertData: readFile(*certPath),
			KeyData:  readFile(*keyPath),
		}
	}
	process, err := exporter.InitExportingProcess(input)
	if err != nil {
		log.Fatalf("connecting to %s over %s: %v", *addr, *proto, err)
	}
	buffered := exporter.NewBufferedIPFIXExporter(process)

	// One template record per template, sent at once by the buffered exporter.
	templateIDs := make([]uint16, len(templates))
	registered := make([][]*entities.InfoElement, len(templates))
	for t, elements := range templates {
		templateIDs[t] = process.NewTemplateID()
		fields := make([]entities.InfoElementWithValue, len(elements))
		for j, e := range elements {
			ie, err := registry.GetInfoElement(e.name, e.enterprise)
			if err != nil {
				log.Fatal(err)
			}
			registered[t] = append(registered[t], ie)
			if fields[j], err = entities.DecodeAndCreateInfoElementWithValue(ie, nil); err != nil {
				log.Fatal(err)
			}
		}
		record := entities.NewTemplateRecordFromElements(templateIDs[t], fields)
		if err := record.PrepareRecord(); err != nil {
			log.Fatal(err)
		}
		if err := buffered.AddRecord(record); err != nil {
			log.Fatalf("sending template %d: %v", templateIDs[t], err)
		}
	}

	var expected *json.Encoder
	if *expectedPath != "" {
		f, err := os.Create(*expectedPath)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		expected = json.NewEncoder(f)
		expected.SetEscapeHTML(false)
	}

	for i := 0; i < *count; i++ {
		t := i % len(templates)
		all := values(i)
		fields := make([]entities.InfoElementWithValue, len(registered[t]))
		doc := map[string]any{"version": 10, "flowset_id": templateIDs[t]}
		for j, ie := range registered[t] {
			value, found := all[ie.Name]
			if !found {
				log.Fatalf("no value for %s", ie.Name)
			}
			if fields[j], err = withValue(ie, value); err != nil {
				log.Fatal(err)
			}
			doc[ie.Name] = rendered(ie, value)
		}
		if err := buffered.AddRecord(entities.NewDataRecordFromElements(templateIDs[t], fields)); err != nil {
			log.Fatalf("sending record %d: %v", i, err)
		}
		if expected != nil {
			if err := expected.Encode(doc); err != nil {
				log.Fatal(err)
			}
		}
		time.Sleep(*pace)
	}
	if err := buffered.Flush(); err != nil {
		log.Fatalf("flushing: %v", err)
	}
	process.CloseConnToCollector()
	fmt.Fprintf(os.Stderr, "goexporter: sent %d records over %s to %s\n", *count, *proto, *addr)
}
