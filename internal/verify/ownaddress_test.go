package verify

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestWaitOwnAddressFailsFastOnWrongCommit: at the new version's own address,
// WrongCommitAnswers answers in a row from one other commit end the wait at
// once; anything else between them (a right answer, another commit, an
// unhealthy answer) starts the count again, and through a shared URL the wait
// goes on until the timeout as before.
func TestWaitOwnAddressFailsFastOnWrongCommit(t *testing.T) {
	t.Parallel()
	const otherSHA = "fedcba9876543210fedcba9876543210fedcba98"
	wrong := func(n int) reply { return reply{n, 200, health(oldSHA)} }
	for _, tc := range []struct {
		name     string
		replies  []reply
		field    string
		shared   bool
		outcome  Outcome
		attempts int    // exact number of polls; 0: more than WrongCommitAnswers
		msg      string // in the error; "" means Wait succeeds
	}{
		{
			name: "wrong commit from the first answer", replies: []reply{wrong(0)},
			outcome: WrongVersion, attempts: WrongCommitAnswers,
			msg: "/health serves abcdef0, not 1234567 (3 answers in a row after ",
		},
		{
			name: "starting, then the wrong commit", replies: []reply{{4, 503, `{"status":"starting"}`}, wrong(0)},
			outcome: WrongVersion, attempts: 4 + WrongCommitAnswers,
			msg: "the new version itself reports another commit at its own address; was its image built from another commit, or is the sha input wrong?",
		},
		{
			name:    "wrong twice, then right: not failed early",
			replies: []reply{wrong(WrongCommitAnswers - 1), {0, 200, health(newSHA)}},
			outcome: Verified, attempts: WrongCommitAnswers - 1 + DefaultConsecutive,
		},
		{
			name:    "wrong twice, unhealthy, wrong twice, then right",
			replies: []reply{wrong(2), {1, 503, `{}`}, wrong(2), {0, 200, health(newSHA)}},
			outcome: Verified, attempts: 5 + DefaultConsecutive,
		},
		{
			name:    "two different wrong commits never three of one in a row",
			replies: []reply{wrong(2), {2, 200, health(otherSHA)}, wrong(2), {0, 200, health(newSHA)}},
			outcome: Verified, attempts: 6 + DefaultConsecutive,
		},
		{
			name: "a version that is not a commit is not a definite answer", replies: []reply{{0, 200, `{"v":"1.2.3"}`}}, field: "v",
			outcome: Unhealthy, msg: `answers 200 but field v is "1.2.3", not a commit SHA`,
		},
		{
			name: "shared URL: the old version may answer until the timeout", replies: []reply{wrong(0)}, shared: true,
			outcome: OldVersion, msg: "still serves abcdef0 (want 1234567): the old version is still answering",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newService(t, tc.replies...)
			opts := fast(s.URL, newSHA)
			opts.VersionField, opts.OwnAddress = tc.field, !tc.shared
			opts.Timeout = 300 * time.Millisecond
			if tc.attempts > 0 {
				// Decided by answers, never by the clock.
				opts.Timeout = time.Hour
			}
			// Only a safety net should the rule break: the test counts answers.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			res, err := Wait(ctx, opts)
			switch {
			case tc.msg == "" && err != nil:
				t.Fatalf("Wait: %v", err)
			case tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)):
				t.Fatalf("error %v, want it to contain %q", err, tc.msg)
			}
			if res.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s", res.Outcome, tc.outcome)
			}
			if tc.attempts > 0 && (res.Attempts != tc.attempts || s.count() != tc.attempts) {
				t.Errorf("%d attempts (%d requests), want %d", res.Attempts, s.count(), tc.attempts)
			}
			if tc.attempts == 0 && res.Attempts <= WrongCommitAnswers {
				t.Errorf("gave up after %d attempts, before the timeout", res.Attempts)
			}
		})
	}
}
