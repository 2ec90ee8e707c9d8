package loadtest

import (
	"fmt"
	"strconv"
	"strings"
)

// FailOn selects the findings that fail a run (the action's fail-on input).
type FailOn struct {
	// Thresholds fails the run when a threshold failed.
	Thresholds bool
	// Checks fails the run when a check failed even once, whether or not a
	// threshold is set on checks.
	Checks bool
	// Regression fails the run when a metric regressed against the
	// baseline beyond its limit.
	Regression bool
}

// ParseFailOn parses a comma-separated list of thresholds, checks and
// regression; "" and "none" select nothing.
func ParseFailOn(s string) (FailOn, error) {
	var f FailOn
	if strings.TrimSpace(s) == "none" {
		return f, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		switch strings.TrimSpace(part) {
		case "":
		case "thresholds":
			f.Thresholds = true
		case "checks":
			f.Checks = true
		case "regression":
			f.Regression = true
		default:
			return FailOn{}, fmt.Errorf("loadtest: fail-on %q: unknown %q; want a comma-separated list of thresholds, checks and regression, or none", s, strings.TrimSpace(part))
		}
	}
	return f, nil
}

// Verdict is the outcome of a run: whether it passed, and why not.
type Verdict struct {
	// Passed is false when a finding selected by FailOn was made.
	Passed bool
	// Reasons holds one line per finding that failed the run, like "2 of
	// 7 thresholds failed"; it is empty when the run passed.
	Reasons []string
	// Notes holds findings that FailOn does not select, in the same form.
	Notes []string
	// Thresholds counts the thresholds, FailedThresholds those that failed.
	Thresholds, FailedThresholds int
	// Checks counts the distinct checks, FailedChecks those that failed at
	// least once; CheckFails and CheckRuns count their outcomes.
	Checks, FailedChecks  int
	CheckFails, CheckRuns int64
	// Regressions lists the comparisons beyond their limit.
	Regressions []Comparison
}

// Judge computes the verdict on s and its comparisons with the baseline
// (nil without one), failing on the findings failOn selects.
func Judge(s *Summary, cmp []Comparison, failOn FailOn) Verdict {
	v := Verdict{Passed: true}
	finding := func(selected bool, text string) {
		if selected {
			v.Passed = false
			v.Reasons = append(v.Reasons, text)
		} else {
			v.Notes = append(v.Notes, text)
		}
	}

	v.Thresholds = len(s.Thresholds)
	for _, t := range s.Thresholds {
		if !t.OK {
			v.FailedThresholds++
		}
	}
	if v.FailedThresholds > 0 {
		finding(failOn.Thresholds, formatCount(float64(v.FailedThresholds))+" of "+plural(v.Thresholds, "threshold")+" failed")
	}

	v.Checks = len(s.Checks)
	for _, c := range s.Checks {
		v.CheckRuns += c.Passes + c.Fails
		v.CheckFails += c.Fails
		if c.Fails > 0 {
			v.FailedChecks++
		}
	}
	if v.FailedChecks > 0 {
		finding(failOn.Checks, fmt.Sprintf("%s of %s failed (%s of %s)", formatCount(float64(v.FailedChecks)), plural(v.Checks, "check"), formatCount(float64(v.CheckFails)), plural64(v.CheckRuns, "run")))
	}

	for _, c := range cmp {
		if c.Regressed {
			v.Regressions = append(v.Regressions, c)
		}
	}
	if len(v.Regressions) > 0 {
		parts := make([]string, len(v.Regressions))
		for i, c := range v.Regressions {
			parts[i] = c.Limit.Metric + " " + formatChange(c) + " (limit " + c.Limit.amount() + ")"
		}
		finding(failOn.Regression, "regression vs baseline: "+strings.Join(parts, ", "))
	}
	return v
}

// Headline is the verdict in one line, like "failed: 2 of 7 thresholds
// failed; 1 of 3 checks failed (4 of 200 runs)".
func (v Verdict) Headline() string {
	line := "failed: " + strings.Join(v.Reasons, "; ")
	if v.Passed {
		var parts []string
		if v.Thresholds > 0 && v.FailedThresholds == 0 {
			parts = append(parts, "all "+plural(v.Thresholds, "threshold")+" passed")
		}
		if v.Checks > 0 && v.FailedChecks == 0 {
			parts = append(parts, "all "+plural(v.Checks, "check")+" passed")
		}
		line = "passed"
		if len(parts) > 0 {
			line += ": " + strings.Join(parts, "; ")
		}
	}
	if len(v.Notes) > 0 {
		line += " (not failing the run: " + strings.Join(v.Notes, "; ") + ")"
	}
	return line
}

// formatChange gives a comparison's change in its limit's unit: +25.3%,
// -30.0%, +1.20pp.
func formatChange(c Comparison) string {
	if c.Limit.Unit == UnitPoints {
		return fmt.Sprintf("%+.2fpp", c.Delta*100)
	}
	if c.Baseline == 0 {
		return "up from 0"
	}
	return fmt.Sprintf("%+.1f%%", c.Relative*100)
}

func plural(n int, noun string) string { return plural64(int64(n), noun) }

// plural64 counts noun: 1 check, 2 checks, 3 statuses.
func plural64(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return formatCount(float64(n)) + " " + noun + "es"
	}
	return formatCount(float64(n)) + " " + noun + "s"
}

// formatCount writes a count with thousands separators: 12,345.
func formatCount(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
