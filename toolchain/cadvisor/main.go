// Command cadvisor is a small cAdvisor server built on the cAdvisor library
// (github.com/google/cadvisor, Apache-2.0).
//
// It watches the machine's cgroups (every one a raw container, e.g. a systemd service or a
// Nomad task) and Docker's containers (named, with their labels: Nomad's job, group and task
// names on the ones it runs; no containerd/CRI-O integration), keeps recent samples in memory
// and serves:
//
//	/                                 a page listing Docker's containers and their current usage
//	/healthz                          "ok" once the manager tracks the root container
//	/metrics                          Prometheus metrics (container_*, machine_*, go_*, process_*)
//	/api/v1.3/machine                 MachineInfo as JSON
//	/api/v1.3/containers/NAME         ContainerInfo of NAME (default "/"), with recent stats
//	/api/v1.3/subcontainers/NAME      ContainerInfo of NAME and every container below it
//	/api/v1.3/docker/                 ContainerInfo of every Docker container, by name
//	/api/v2.0/version                 the cAdvisor version as a JSON string
//	/api/v2.0/stats/NAME              recent stats of NAME (?count=N, ?recursive=true)
//	/api/v2.0/spec/NAME               the spec of NAME (?recursive=true)
//
// The v1.3 container endpoints accept a JSON ContainerInfoRequest body (e.g. {"num_stats":5})
// like upstream's. Flags follow upstream cAdvisor's names; the housekeeping, docker_only and
// machine-id flags are the library's own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/cadvisor/cache/memory"
	"github.com/google/cadvisor/container"
	_ "github.com/google/cadvisor/container/docker/install" // Docker's containers, by name and labels
	info "github.com/google/cadvisor/info/v1"
	v2 "github.com/google/cadvisor/info/v2"
	"github.com/google/cadvisor/manager"
	"github.com/google/cadvisor/metrics"
	"github.com/google/cadvisor/utils/sysfs"
	"github.com/google/cadvisor/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// defaultMetrics are the metric kinds collected unless -enable_metrics/-disable_metrics say
// otherwise: those that need neither a container runtime nor extra privileges or config files.
var defaultMetrics = container.MetricSet{
	container.CpuUsageMetrics:     struct{}{},
	container.MemoryUsageMetrics:  struct{}{},
	container.NetworkUsageMetrics: struct{}{},
	container.DiskIOMetrics:       struct{}{},
	container.DiskUsageMetrics:    struct{}{},
	container.ProcessMetrics:      struct{}{},
	container.OOMMetrics:          struct{}{},
}

var (
	listenIP        = flag.String("listen_ip", "", "IP to listen on, defaults to all IPs")
	port            = flag.Int("port", 8080, "port to listen on")
	versionFlag     = flag.Bool("version", false, "print cAdvisor version and exit")
	storageDuration = flag.Duration("storage_duration", 2*time.Minute, "how long to keep data stored in memory")
	metricsPath     = flag.String("prometheus_endpoint", "/metrics", "endpoint to expose Prometheus metrics on")
	rawCgroupPrefix = flag.String("raw_cgroup_prefix_whitelist", "", "comma-separated list of cgroup path prefixes to collect; empty means all")
	envWhitelist    = flag.String("env_metadata_whitelist", "", "comma-separated list of environment variable prefixes exported as container labels")
	enableMetrics   = container.MetricSet{}
	disableMetrics  = container.MetricSet{}
)

func init() {
	flag.Var(&enableMetrics, "enable_metrics", "comma-separated list of metrics to collect; overrides -disable_metrics (default "+defaultMetrics.String()+")")
	flag.Var(&disableMetrics, "disable_metrics", "comma-separated list of metrics not to collect")
}

func main() {
	klog.InitFlags(nil)
	flag.Parse()
	if *versionFlag {
		fmt.Printf("cAdvisor version %s (%s)\n", version.Info["version"], version.Info["revision"])
		return
	}
	included := includedMetrics(enableMetrics, disableMetrics)
	klog.Infof("cAdvisor %s: collecting %s", version.Info["version"], included)

	// Not splitList: the library needs at least one prefix, and reads [""] as every cgroup.
	rawPrefixes := strings.Split(*rawCgroupPrefix, ",")
	m, err := manager.New(memory.New(*storageDuration, nil), sysfs.NewRealSysFs(),
		manager.HousekeepingConfigFlags, included, &http.Client{Timeout: 10 * time.Second},
		rawPrefixes, splitList(*envWhitelist), "", 0)
	if err != nil {
		klog.Fatalf("cannot create the cAdvisor manager: %v", err)
	}
	if err := m.Start(); err != nil {
		klog.Fatalf("cannot start the cAdvisor manager: %v", err)
	}

	addr := net.JoinHostPort(*listenIP, strconv.Itoa(*port))
	server := &http.Server{Addr: addr, Handler: newMux(m, included), ReadHeaderTimeout: 10 * time.Second}
	go stopOnSignal(server, m)
	klog.Infof("serving on %s", addr)
	if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		klog.Fatalf("cannot serve on %s: %v", addr, err)
	}
}

// includedMetrics is -enable_metrics if given, else the defaults minus -disable_metrics.
func includedMetrics(enable, disable container.MetricSet) container.MetricSet {
	if len(enable) > 0 {
		return enable
	}
	return defaultMetrics.Difference(disable)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(value string) []string {
	var items []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// stopOnSignal shuts the server and the manager down on SIGINT or SIGTERM.
func stopOnSignal(server *http.Server, m manager.Manager) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	sig := <-signals
	klog.Infof("received %s, stopping", sig)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	if err := m.Stop(); err != nil {
		klog.Errorf("stopping the manager: %v", err)
	}
}

// newMux routes the health, metrics and JSON API endpoints.
func newMux(m manager.Manager, included container.MetricSet) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !m.Exists("/") {
			http.Error(w, "the root container is not tracked yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux.Handle(*metricsPath, metricsHandler(m, included))
	api := map[string]func(*http.Request, string) (any, error){
		"/api/v1.3/machine": func(*http.Request, string) (any, error) { return m.GetMachineInfo() },
		"/api/v1.3/containers/": func(r *http.Request, name string) (any, error) {
			query, err := infoRequest(r)
			if err != nil {
				return nil, err
			}
			return m.GetContainerInfo(name, query)
		},
		"/api/v1.3/docker": func(r *http.Request, _ string) (any, error) {
			query, err := infoRequest(r)
			if err != nil {
				return nil, err
			}
			return m.AllDockerContainers(query)
		},
		"/api/v1.3/subcontainers/": func(r *http.Request, name string) (any, error) {
			query, err := infoRequest(r)
			if err != nil {
				return nil, err
			}
			return m.SubcontainersInfo(name, query)
		},
		"/api/v2.0/version": func(*http.Request, string) (any, error) {
			v, err := m.GetVersionInfo()
			if err != nil {
				return nil, err
			}
			return v.CadvisorVersion, nil
		},
		"/api/v2.0/stats/": func(r *http.Request, name string) (any, error) {
			infos, err := m.GetContainerInfoV2(name, requestOptions(r))
			if err != nil {
				return nil, err
			}
			stats := make(map[string][]*v2.ContainerStats, len(infos))
			for key, cinfo := range infos {
				stats[key] = cinfo.Stats
			}
			return stats, nil
		},
		"/api/v2.0/spec/": func(r *http.Request, name string) (any, error) {
			return m.GetContainerSpec(name, requestOptions(r))
		},
	}
	for prefix, get := range api {
		mux.Handle(prefix, jsonHandler(m, prefix, get))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		query := info.ContainerInfoRequest{NumStats: 2}
		containers, err := m.AllDockerContainers(&query)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, pageData(containers)); err != nil {
			klog.Errorf("writing the page: %v", err)
		}
	})
	return mux
}

// A row of the page: one Docker container and its usage over its last two samples.
type row struct {
	Name, Task, Job, Image string
	CPU                    string // cores in use
	Memory, Limit          string // MiB
}

func pageData(containers map[string]info.ContainerInfo) map[string]any {
	rows := make([]row, 0, len(containers))
	for _, c := range containers {
		r := row{Name: strings.TrimPrefix(firstOr(c.Aliases, c.Name), "/"), Image: c.Spec.Image,
			Task: c.Spec.Labels["com.hashicorp.nomad.task_name"], Job: c.Spec.Labels["com.hashicorp.nomad.job_name"],
			CPU: "-", Memory: "-", Limit: "-"}
		if n := len(c.Stats); n > 0 {
			last := c.Stats[n-1]
			r.Memory = fmt.Sprintf("%.1f", float64(last.Memory.Usage)/(1<<20))
			if n > 1 {
				prev := c.Stats[n-2]
				if elapsed := last.Timestamp.Sub(prev.Timestamp); elapsed > 0 {
					r.CPU = fmt.Sprintf("%.3f", float64(last.Cpu.Usage.Total-prev.Cpu.Usage.Total)/float64(elapsed.Nanoseconds()))
				}
			}
		}
		if limit := c.Spec.Memory.Limit; limit > 0 && limit < 1<<50 {
			r.Limit = fmt.Sprintf("%.0f", float64(limit)/(1<<20))
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	host, _ := os.Hostname()
	return map[string]any{"Host": host, "Version": version.Info["version"], "Rows": rows, "Metrics": *metricsPath}
}

func firstOr(items []string, fallback string) string {
	if len(items) > 0 {
		return items[0]
	}
	return fallback
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>cAdvisor on {{.Host}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ccc;text-align:left}td.n{text-align:right}</style>
</head><body>
<h1>Containers on {{.Host}}</h1>
<p>cAdvisor {{.Version}} (this project's build: Docker's containers and their usage now; the JSON
API has their history: <a href="/api/v1.3/docker">/api/v1.3/docker</a>, <a href="{{.Metrics}}">{{.Metrics}}</a>).</p>
<table id="containers"><tr><th>container</th><th>Nomad job</th><th>task</th><th>image</th><th>CPU (cores)</th><th>memory (MiB)</th><th>limit (MiB)</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.Job}}</td><td>{{.Task}}</td><td>{{.Image}}</td><td class="n">{{.CPU}}</td><td class="n">{{.Memory}}</td><td class="n">{{.Limit}}</td></tr>
{{else}}<tr><td colspan="7">no Docker container runs here</td></tr>
{{end}}</table>
</body></html>
`))

// metricsHandler serves the library's container and machine collectors plus Go and process
// metrics of this server, labelling container series with id, name, image and labels.
func metricsHandler(m manager.Manager, included container.MetricSet) http.Handler {
	registry := prometheus.NewRegistry()
	opts := v2.RequestOptions{IdType: v2.TypeName, Count: 1, Recursive: true}
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewPrometheusMachineCollector(m, included),
		metrics.NewPrometheusCollector(m, metrics.DefaultContainerLabels, included, clock.RealClock{}, opts),
	)
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// jsonHandler answers GET/POST on prefix (and, for prefixes ending in "/", on every container
// name below it) with get's result as JSON: 404 for unknown containers, 500 for other errors.
func jsonHandler(m manager.Manager, prefix string, get func(*http.Request, string) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			http.Error(w, "only GET and POST are supported", http.StatusMethodNotAllowed)
			return
		}
		name := "/"
		if strings.HasSuffix(prefix, "/") {
			name = containerName(r.URL.Path, prefix)
			if !m.Exists(name) {
				http.Error(w, fmt.Sprintf("unknown container %q", name), http.StatusNotFound)
				return
			}
		} else if r.URL.Path != prefix {
			http.NotFound(w, r)
			return
		}
		result, err := get(r, name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(result); err != nil {
			klog.Errorf("writing %s: %v", r.URL.Path, err)
		}
	})
}

// containerName maps "/api/v1.3/containers/system.slice/" to "/system.slice".
func containerName(path, prefix string) string {
	return "/" + strings.Trim(strings.TrimPrefix(path, prefix), "/")
}

// infoRequest is the request body's ContainerInfoRequest, or the default (60 stats) if empty.
func infoRequest(r *http.Request) (*info.ContainerInfoRequest, error) {
	query := info.DefaultContainerInfoRequest()
	if r.Body == nil {
		return &query, nil
	}
	if err := json.NewDecoder(r.Body).Decode(&query); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid ContainerInfoRequest body: %w", err)
	}
	return &query, nil
}

// requestOptions reads ?count= (default 60) and ?recursive= of a v2.0 request.
func requestOptions(r *http.Request) v2.RequestOptions {
	opts := v2.RequestOptions{IdType: v2.TypeName, Count: 60}
	if count, err := strconv.Atoi(r.URL.Query().Get("count")); err == nil {
		opts.Count = count
	}
	opts.Recursive, _ = strconv.ParseBool(r.URL.Query().Get("recursive"))
	return opts
}
