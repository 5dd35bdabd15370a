//go:build linux

package main

import (
	"fmt"
	"strings"
	"time"
)

const (
	// The goals for memory: at most this much while supervising
	// one path, and no growth beyond flatTolerance over the polls.
	peerRSSGoalKiB = 15 * 1024
	flatTolerance  = 1024 // KiB
	// versionGap is how much slower than an empty Go program `secretrun
	// version` may be.
	versionGap = 2 * time.Millisecond
)

// measured says the tool ran and has timings.
func (r *peerResult) measured() bool { return r != nil && r.missing == "" && len(r.s) > 0 }

// best returns secretrun's result and the fastest peer's, by median.
func (row peerRow) best() (self, peer *peerResult) {
	for i := range row.results {
		r := &row.results[i]
		if !r.measured() || r.reference {
			continue
		}
		if i == 0 {
			self = r
			continue
		}
		if peer == nil || r.s.median() < peer.s.median() {
			peer = r
		}
	}
	return self, peer
}

// others lists the measured peers other than the best, for the ratio
// table: "sstart 9.3 ms, Vault Agent 2.01 s".
func (row peerRow) others(best *peerResult) string {
	var parts []string
	for i, r := range row.results {
		if i == 0 || !r.measured() || r.reference || &row.results[i] == best {
			continue
		}
		parts = append(parts, r.tool+" "+ms(r.s.median()))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// floor returns the row's measured reference program, or nil.
func (row peerRow) floor() *peerResult {
	for i := range row.results {
		if r := &row.results[i]; r.reference && r.measured() {
			return r
		}
	}
	return nil
}

func (row peerRow) result(tool string) *peerResult {
	for i := range row.results {
		if row.results[i].tool == tool {
			return &row.results[i]
		}
	}
	return nil
}

// versionFigures are the figures of the programs that contact nothing,
// those not measured nil.
type versionFigures struct {
	self, empty, http, httpStatic, trueBin *peerResult
}

func (row peerRow) versionFigures() versionFigures {
	ok := func(r *peerResult) *peerResult {
		if !r.measured() {
			return nil
		}
		return r
	}
	return versionFigures{
		self:       ok(&row.results[0]),
		empty:      ok(row.result(toolEmptyGo)),
		http:       ok(row.result(toolEmptyHTTP)),
		httpStatic: ok(row.result(toolEmptyHTTPStatic)),
		trueBin:    ok(row.result("`/bin/true`")),
	}
}

// floorVerdict says whether the versionGap goal is within reach of a
// program that links net/http at all.
func floorVerdict(floor time.Duration) string { return reach(floor <= versionGap) }

func reach(within bool) string {
	if within {
		return "within reach"
	}
	return "the goal is below this floor"
}

func ratioOf(a, b time.Duration) float64 { return float64(a) / float64(b) }

// peerTargets adds the goals against the peers to the Targets
// table.
func (r *report) peerTargets(p func(string, ...any)) {
	pr := r.peers
	if pr == nil {
		return
	}
	for _, row := range pr.rows {
		if row.version {
			v := row.versionFigures()
			if v.self == nil || v.empty == nil {
				continue
			}
			gap := v.self.s.median() - v.empty.s.median()
			p("| side by side: `secretrun version` within %s of an empty Go program | %s (%s vs %s) | %s |\n",
				ms(versionGap), signedMS(gap), ms(v.self.s.median()), ms(v.empty.s.median()), met(gap <= versionGap))
			if v.http != nil {
				floor := v.http.s.median() - v.empty.s.median()
				p("| … where %s is itself %s (%s), and `secretrun version` %s over it | | %s |\n",
					toolEmptyHTTP, signedMS(floor), ms(v.http.s.median()), signedMS(v.self.s.median()-v.http.s.median()),
					floorVerdict(floor))
			}
			continue
		}
		if row.goal == 0 {
			continue
		}
		self, peer := row.best()
		if self == nil || peer == nil {
			p("| side by side: %s ≤ %.1f× the best peer | not measured | |\n", row.work, row.goal)
			continue
		}
		q := ratioOf(self.s.median(), peer.s.median())
		p("| side by side: %s ≤ %.1f× the best peer | %.2f× (%s vs %s %s) | %s |\n",
			row.work, row.goal, q, ms(self.s.median()), peer.tool, ms(peer.s.median()), met(q <= row.goal))
		if f := row.floor(); f != nil {
			fq := ratioOf(f.s.median(), peer.s.median())
			p("| … where %s takes %s, %.2f× %s, and secretrun %s over it | | %s |\n",
				f.tool, ms(f.s.median()), fq, peer.tool, signedMS(self.s.median()-f.s.median()), reach(fq <= row.goal))
		}
	}
	var self *peerRSSRow
	var peers []string
	worst := true
	for i := range pr.rss {
		x := &pr.rss[i]
		if !strings.HasPrefix(x.work, "Vault") || x.missing != "" {
			continue
		}
		if x.tool == toolSecretrun {
			self = x
		}
	}
	if self != nil {
		for _, x := range pr.rss {
			if !strings.HasPrefix(x.work, "Vault") || x.missing != "" || x.tool == toolSecretrun {
				continue
			}
			peers = append(peers, x.tool+" "+mib(x.hwm))
			worst = worst && self.hwm <= x.hwm
		}
		detail := fmt.Sprintf("secretrun %s (VmRSS %s)", mib(self.hwm), mib(self.rss))
		if len(peers) > 0 {
			detail += "; " + strings.Join(peers, ", ")
		}
		p("| side by side: peak RSS (VmHWM) supervising one Vault path ≤ 15 MiB and ≤ every peer's | %s | %s |\n",
			detail, met(self.hwm <= peerRSSGoalKiB && worst))
	}
	if from, to, ok := pr.flatSpan(); ok {
		growth := to.rss - from.rss
		p("| secretrun's VmRSS flat from %d to %d polls (growth ≤ %s) | %+d KiB (%s → %s) | %s |\n",
			from.polls, to.polls, mib(flatTolerance), growth, mib(from.rss), mib(to.rss), met(growth <= flatTolerance))
	}
}

func (r *report) peersSection(p func(string, ...any)) {
	pr := r.peers
	if pr == nil {
		return
	}
	p("## Side by side with peers\n\n")
	p("secretrun and the tools it is compared with, measured in one interleaved run against the same\n")
	p("loopback servers and the same seeded secrets: chamber %s and sstart %s, installed from their Go\n", chamberVersion, sstartVersion)
	p("modules by `scripts/install-peers.sh`, and Vault Agent (the Vault 1.21.0 binary the tests build, `vault\n")
	p("agent` with an `exec` stanza and one `env_template` per variable: its process-supervisor mode).\n")
	p("envconsul is not measured: the Go module proxy this machine reaches does not serve it. In each of\n")
	warm := " (after one warm-up round)"
	if r.opts.smoke {
		warm = ""
	}
	p("%d %s%s every tool runs every work once with the child `/bin/true`,\n", pr.rounds, plural(pr.rounds, "round"), warm)
	p("the works and the tools within each work in a new random order each round, so that the machine's\n")
	p("load weighs on all alike; the figures are medians of those rounds. Before any timing each tool runs\n")
	p("once with a child that prints a SHA-256 digest of every expected variable, and only a tool whose\n")
	p("child got every value is timed. All tools get the same environment for a backend: a Vault token,\n")
	p("or static AWS keys with an explicit region, moto as the endpoint (`AWS_ENDPOINT_URL`, and\n")
	p("`CHAMBER_AWS_SSM_ENDPOINT`, which chamber's endpoint resolver returns for every AWS service) and\n")
	p("`AWS_EC2_METADATA_DISABLED=true`, or an Infisical machine identity's client ID and secret with which\n")
	p("each tool logs in before it lists the folder. Vault Agent logs in with a token file (it refuses to\n")
	p("run without an `auto_auth` method), and with `restart_on_secret_changes = \"never\"` it exits with the\n")
	p("child's status once the child exits; it waits a fixed 2 s (a debounce in its exec server) between\n")
	p("rendering the templates and starting the child, which its figures include. The ratio is secretrun's\n")
	p("median over the fastest peer's. Beside the AWS rows' tools runs %s: a\n", toolAWSFloor)
	p("program of the standard library alone, built outside the module as `go install` builds a tool, that\n")
	p("signs the same call, sends it, follows its pages and execs the child, with no configuration, checks or\n")
	p("supervision. It is no peer; it is how fast any Go tool could be against the same server, and the\n")
	p("Targets table says how much of a goal it leaves.\n\n")

	p("| work | secretrun | best peer | ratio | goal |\n|---|---:|---|---:|---|\n")
	for _, row := range pr.rows {
		if row.version {
			v := row.versionFigures()
			if v.self == nil || v.empty == nil {
				continue
			}
			ref := toolEmptyGo + " " + ms(v.empty.s.median())
			var refs []string
			for _, r := range []*peerResult{v.http, v.httpStatic, v.trueBin} {
				if r != nil {
					refs = append(refs, r.tool+" "+ms(r.s.median()))
				}
			}
			if len(refs) > 0 {
				ref += " (" + strings.Join(refs, ", ") + ")"
			}
			p("| `secretrun version` (contacts nothing) | %s | %s | %s | ≤ %s |\n",
				ms(v.self.s.median()), ref, signedMS(v.self.s.median()-v.empty.s.median()), signedMS(versionGap))
			continue
		}
		self, peer := row.best()
		goal := ""
		if row.goal != 0 {
			goal = fmt.Sprintf("≤ %.1f×", row.goal)
		}
		switch {
		case self == nil:
			p("| %s | not measured: %s | | | %s |\n", row.work, row.results[0].missing, goal)
		case peer == nil:
			p("| %s | %s | no peer measured | | %s |\n", row.work, ms(self.s.median()), goal)
		default:
			p("| %s | %s | %s %s%s | %.2f× | %s |\n", row.work, ms(self.s.median()), peer.tool, ms(peer.s.median()),
				row.others(peer), ratioOf(self.s.median(), peer.s.median()), goal)
		}
	}
	for _, work := range pr.rssWorks() {
		self, peer, others := pr.rssBest(work)
		if self == nil || peer == nil {
			continue
		}
		goal := ""
		if strings.HasPrefix(work, "Vault") {
			goal = fmt.Sprintf("≤ %s and ≤ every peer", mib(peerRSSGoalKiB))
		}
		p("| peak RSS supervising: %s | %s | %s %s%s | %.2f× | %s |\n", work, mib(self.hwm), peer.tool, mib(peer.hwm), others,
			float64(self.hwm)/float64(peer.hwm), goal)
	}
	p("\n")

	p("Every tool, every work:\n\n")
	p("| work | tool | median | p10 – p90 | runs | note |\n|---|---|---:|---:|---:|---|\n")
	for _, row := range pr.rows {
		for _, res := range row.results {
			if res.missing != "" {
				p("| %s | %s | – | – | 0 | not measured: %s |\n", row.work, res.tool, res.missing)
				continue
			}
			p("| %s | %s | %s | %s | %d | %s |\n", row.work, res.tool, ms(res.s.median()), spread(res.s), len(res.s), res.note)
		}
	}
	p("\n")

	if len(pr.rss) > 0 {
		p("### Memory while supervising\n\n")
		p("Each tool started with a child that prints a line and sleeps, in the mode in which it stays the\n")
		p("child's parent; VmHWM (peak resident set) and VmRSS of the tool's own process from /proc/PID/status,\n")
		p("read %s after the child started (refresh interval %s for the tools that refresh). chamber\n", pr.rssWait, peerRSSInterval)
		p("replaces itself with the child (`exec`), so no process of its own is left to measure.\n\n")
		p("| work | tool | how | peak RSS (VmHWM) | RSS |\n|---|---|---|---:|---:|\n")
		for _, x := range pr.rss {
			if x.missing != "" {
				p("| %s | %s | | – | – (%s) |\n", x.work, x.tool, x.missing)
				continue
			}
			p("| %s | %s | %s | %s | %s |\n", x.work, x.tool, x.how, mib(x.hwm), mib(x.rss))
		}
		p("\n")
	}
	if len(pr.flat) > 0 || pr.flatErr != "" {
		p("### secretrun's memory over time\n\n")
		p("`secretrun run --watch` on one Vault path (10 fields) with `interval: %s` and a sleeping child,\n", flatInterval)
		p("reached through the counting proxy: each idle poll of one path is one request, and secretrun's\n")
		p("VmRSS and VmHWM are read when the proxy has counted the given number of requests after the start.\n")
		p("secretrun runs with `GODEBUG=gctrace=1`: the live heap is what the last garbage collection left,\n")
		p("which tells a growing heap from memory the Go runtime has not yet given back to the system. The\n")
		p("target compares the first reading taken %s or more after the start (start-up runs with its own GC\n", flatSettled)
		p("settings for about a second) with the last.\n\n")
		p("| polls | after | RSS | peak RSS (VmHWM) | collections | live heap after the last |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, pt := range pr.flat {
			live := "–"
			if pt.gcs > 0 {
				live = fmt.Sprintf("%d MB", pt.liveMB)
			}
			p("| %d | %s | %s | %s | %d | %s |\n", pt.polls, pt.after.Round(10*time.Millisecond), mib(pt.rss), mib(pt.hwm), pt.gcs, live)
		}
		if pr.flatErr != "" {
			p("\nThe measurement stopped: %s\n", pr.flatErr)
		}
		p("\n")
	}
	for _, s := range pr.skipped {
		p("Not measured: %s: %v\n\n", s.what, s.err)
	}
}

// rssWorks lists the works whose memory was measured, in order.
func (pr *peersResult) rssWorks() []string {
	var works []string
	for _, x := range pr.rss {
		if len(works) == 0 || works[len(works)-1] != x.work {
			works = append(works, x.work)
		}
	}
	return works
}

// rssBest returns secretrun's memory for a work and the smallest peer's,
// with the other peers' listed: " (Vault Agent 147.5 MiB)".
func (pr *peersResult) rssBest(work string) (self, peer *peerRSSRow, others string) {
	var rest []*peerRSSRow
	for i := range pr.rss {
		x := &pr.rss[i]
		if x.work != work || x.missing != "" {
			continue
		}
		switch {
		case x.tool == toolSecretrun:
			self = x
		case peer == nil || x.hwm < peer.hwm:
			if peer != nil {
				rest = append(rest, peer)
			}
			peer = x
		default:
			rest = append(rest, x)
		}
	}
	var parts []string
	for _, x := range rest {
		parts = append(parts, x.tool+" "+mib(x.hwm))
	}
	if len(parts) > 0 {
		others = " (" + strings.Join(parts, ", ") + ")"
	}
	return self, peer, others
}

// flatSettled is how long secretrun runs before its memory counts as
// settled: start-up runs with its own GC settings for about a second.
const flatSettled = 2 * time.Second

// flatSpan returns the points the growth of memory is measured between:
// the first one once start-up is over (the first point at all in a run too
// short for that) and the last.
func (pr *peersResult) flatSpan() (from, to rssPoint, ok bool) {
	if len(pr.flat) < 2 {
		return rssPoint{}, rssPoint{}, false
	}
	from = pr.flat[0]
	for _, pt := range pr.flat[:len(pr.flat)-1] {
		if pt.after >= flatSettled {
			from = pt
			break
		}
	}
	return from, pr.flat[len(pr.flat)-1], true
}
