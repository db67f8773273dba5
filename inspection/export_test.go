package inspection

// PreparedStats reports how many declarations Decide committed from their
// prepared evaluation and how many it evaluated again inside the write
// transaction because an input had moved (or nothing was prepared).
func PreparedStats(s *Service) (used, recomputed int64) {
	return s.prep.used.Load(), s.prep.recomputed.Load()
}
