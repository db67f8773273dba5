package store

import "github.com/prometheus/client_golang/prometheus"

var (
	descBatches  = prometheus.NewDesc("ktcn_store_commit_batches_total", "Synced group commits.", nil, nil)
	descUpdates  = prometheus.NewDesc("ktcn_store_commit_updates_total", "Updates the group commits carried.", nil, nil)
	descReruns   = prometheus.NewDesc("ktcn_store_commit_reruns_total", "Updates run again because their batch failed or overflowed.", nil, nil)
	descBytes    = prometheus.NewDesc("ktcn_store_commit_bytes_total", "Key and value bytes the group commits wrote.", nil, nil)
	descMaxBatch = prometheus.NewDesc("ktcn_store_commit_max_batch", "The most updates one group commit has carried since start.", nil, nil)
	descBatch    = prometheus.NewDesc("ktcn_store_commit_batch_size", "Updates per group commit.", nil, nil)
	descSync     = prometheus.NewDesc("ktcn_store_commit_sync_seconds", "Time a group commit took to return, its fsync included.", nil, nil)
	descLSM      = prometheus.NewDesc("ktcn_badger_lsm_size_bytes", "Size of badger's LSM tree (SST files), as badger last measured it (every minute).", nil, nil)
	descVlog     = prometheus.NewDesc("ktcn_badger_vlog_size_bytes", "Size of badger's value log, as badger last measured it (every minute).", nil, nil)
)

// Collector reports the committer's work and badger's sizes at scrape
// time; the wiring registers it beside the API's metrics.
func (d *DB) Collector() prometheus.Collector { return dbCollector{d} }

type dbCollector struct{ d *DB }

func (c dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{descBatches, descUpdates, descReruns, descBytes, descMaxBatch, descBatch, descSync, descLSM, descVlog} {
		ch <- desc
	}
}

func (c dbCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.CommitStats()
	for _, m := range []struct {
		desc *prometheus.Desc
		v    int64
	}{{descBatches, st.Batches}, {descUpdates, st.Updates}, {descReruns, st.Reruns}, {descBytes, st.Bytes}} {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.v))
	}
	ch <- prometheus.MustNewConstMetric(descMaxBatch, prometheus.GaugeValue, float64(st.MaxBatch))
	ch <- constHistogram(descBatch, st.BatchSize)
	ch <- constHistogram(descSync, st.SyncSeconds)
	lsm, vlog := c.d.Sizes()
	ch <- prometheus.MustNewConstMetric(descLSM, prometheus.GaugeValue, float64(lsm))
	ch <- prometheus.MustNewConstMetric(descVlog, prometheus.GaugeValue, float64(vlog))
}

func constHistogram(desc *prometheus.Desc, h Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(desc, h.Count, h.Sum, buckets)
}
