// Command checktlog checks the voucher ledger's checkpoints and proofs with
// stock Go tooling only: golang.org/x/mod/sumdb/note opens the cosigned
// checkpoint and golang.org/x/mod/sumdb/tlog recomputes the tree from the
// export and checks the served inclusion and consistency proofs (DESIGN.md §4).
//
// Usage:
//
//	checktlog -url http://127.0.0.1:8000 -token TOKEN [-old-checkpoint FILE]
//	checktlog -keys keys.json -checkpoint checkpoint.txt -export ledger.jsonl
//
// Each of -keys, -checkpoint and -export reads that document from a file
// instead of the server. The proofs always come from the server: without -url
// they are not checked (and the output says so). The URL and the token may
// also be given as CHECKTLOG_URL and CHECKTLOG_TOKEN.
//
// It exits 0 and prints a line starting with "ok: " when everything verifies,
// and exits 1 with a message on the first failure (2 for bad usage).
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const apiPrefix = "/api/v1/ledger"

type config struct {
	baseURL        string
	token          string
	keysFile       string
	checkpointFile string
	exportFile     string
	oldCheckpoint  string
	client         *http.Client
}

type publishedKey struct {
	KeyID      string  `json:"key_id"`
	Purpose    string  `json:"purpose"`
	Region     string  `json:"region"`
	NoteName   string  `json:"note_name"`
	NoteKey    string  `json:"note_key"`
	ValidFrom  string  `json:"valid_from"`
	ValidUntil *string `json:"valid_until"`
}

type keysDocument struct {
	Origin string         `json:"origin"`
	Keys   []publishedKey `json:"keys"`
}

// checkpoint is a C2SP tlog-checkpoint body: origin, size and root hash.
type checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// memoryHashes is the tlog hash storage of the whole export, in memory:
// index i holds the hash with stored index i (tlog.StoredHashIndex order).
type memoryHashes []tlog.Hash

func (m memoryHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, index := range indexes {
		if index < 0 || index >= int64(len(m)) {
			return nil, fmt.Errorf("hash storage has no index %d", index)
		}
		out[i] = m[index]
	}
	return out, nil
}

func main() {
	var cfg config
	flag.StringVar(&cfg.baseURL, "url", os.Getenv("CHECKTLOG_URL"), "server base URL, e.g. http://127.0.0.1:8000 (env CHECKTLOG_URL)")
	flag.StringVar(&cfg.token, "token", os.Getenv("CHECKTLOG_TOKEN"), "auditor token for the export (env CHECKTLOG_TOKEN)")
	flag.StringVar(&cfg.keysFile, "keys", "", "read the published keys (GET "+apiPrefix+"/keys) from this file")
	flag.StringVar(&cfg.checkpointFile, "checkpoint", "", "read the signed checkpoint from this file")
	flag.StringVar(&cfg.exportFile, "export", "", "read the JSON Lines export from this file")
	flag.StringVar(&cfg.oldCheckpoint, "old-checkpoint", "", "an earlier signed checkpoint (file) that the current one must extend")
	timeout := flag.Duration("timeout", 60*time.Second, "timeout of each HTTP request")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "checktlog: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	cfg.baseURL = strings.TrimRight(cfg.baseURL, "/")
	if cfg.baseURL == "" && (cfg.keysFile == "" || cfg.checkpointFile == "" || cfg.exportFile == "") {
		fmt.Fprintln(os.Stderr, "checktlog: give -url, or all of -keys, -checkpoint and -export")
		os.Exit(2)
	}
	if cfg.baseURL != "" && cfg.exportFile == "" && cfg.token == "" {
		fmt.Fprintln(os.Stderr, "checktlog: the export needs an auditor token: give -token or CHECKTLOG_TOKEN")
		os.Exit(2)
	}
	cfg.client = &http.Client{Timeout: *timeout}

	summary, err := run(&cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "checktlog: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("ok: " + summary)
}

func run(cfg *config) (string, error) {
	// 1. The published keys: a note verifier for each active key, per region.
	keysRaw, err := cfg.document(cfg.keysFile, "/keys", false)
	if err != nil {
		return "", err
	}
	var keys keysDocument
	if err := json.Unmarshal(keysRaw, &keys); err != nil {
		return "", fmt.Errorf("keys: %v", err)
	}
	if keys.Origin == "" {
		return "", errors.New("keys: no origin")
	}
	var verifiers, everyVerifier, logVerifiers []note.Verifier
	activeByRegion := map[string][]note.Verifier{}
	everyByRegion := map[string][]note.Verifier{}
	allRegions := map[string]bool{}
	for _, k := range keys.Keys {
		v, err := note.NewVerifier(k.NoteKey)
		if err != nil {
			return "", fmt.Errorf("keys: note.NewVerifier(%q) for %s: %v", k.NoteKey, k.KeyID, err)
		}
		if v.Name() != k.NoteName {
			return "", fmt.Errorf("keys: %s: verifier name %q differs from note_name %q", k.KeyID, v.Name(), k.NoteName)
		}
		if k.Purpose == "log" {
			// The operator's log key signs checkpoints (DESIGN §10); witnesses'
			// cosignatures beside it are signatures of another type, which
			// note.Open leaves unverified.
			if v.Name() != keys.Origin {
				return "", fmt.Errorf("keys: log key %s is named %q, not the origin %q", k.KeyID, v.Name(), keys.Origin)
			}
			logVerifiers = append(logVerifiers, v)
			continue
		}
		allRegions[k.Region] = true
		everyVerifier = append(everyVerifier, v)
		everyByRegion[k.Region] = append(everyByRegion[k.Region], v)
		if k.ValidUntil == nil { // a retired key no longer signs new checkpoints
			verifiers = append(verifiers, v)
			activeByRegion[k.Region] = append(activeByRegion[k.Region], v)
		}
	}
	regions := sortedKeys(allRegions)
	if len(regions) == 0 {
		return "", errors.New("keys: no keys published")
	}
	for _, region := range regions {
		if len(activeByRegion[region]) == 0 {
			return "", fmt.Errorf("keys: region %s has no active key", region)
		}
	}

	// 2. The checkpoint: a signed note, opened by note.Open, cosigned by every region.
	cpRaw, err := cfg.document(cfg.checkpointFile, "/checkpoint", false)
	if err != nil {
		return "", err
	}
	cp, err := openCheckpoint(cpRaw, logVerifiers, verifiers, activeByRegion, regions, keys.Origin)
	if err != nil {
		return "", fmt.Errorf("checkpoint: %v", err)
	}

	// 3. The export: each line is one leaf; tlog stores and hashes them.
	exportRaw, err := cfg.document(cfg.exportFile, "/export", true)
	if err != nil {
		return "", err
	}
	lines, err := splitLines(exportRaw)
	if err != nil {
		return "", fmt.Errorf("export: %v", err)
	}
	if int64(len(lines)) < cp.Size {
		return "", fmt.Errorf("export has %d lines, the checkpoint covers %d", len(lines), cp.Size)
	}
	storage, err := storeRecords(lines)
	if err != nil {
		return "", fmt.Errorf("export: %v", err)
	}
	root, err := treeHash(cp.Size, storage)
	if err != nil {
		return "", err
	}
	if root != cp.Root {
		return "", fmt.Errorf("root mismatch: tlog computes %s over the first %d export lines, the checkpoint signs %s",
			root, cp.Size, cp.Root)
	}
	summary := fmt.Sprintf("checkpoint %q size %d root %s %s (entries of regions %s); tlog.TreeHash of the export matches",
		cp.Origin, cp.Size, cp.Root, signedBy(logVerifiers, regions), strings.Join(regions, ", "))

	// An earlier checkpoint: signed by the regions and a prefix of this tree.
	var old *checkpoint
	if cfg.oldCheckpoint != "" {
		raw, err := os.ReadFile(cfg.oldCheckpoint)
		if err != nil {
			return "", err
		}
		// Signed by the keys of its time: current or since retired.
		if old, err = openCheckpoint(raw, logVerifiers, everyVerifier, everyByRegion, regions, keys.Origin); err != nil {
			return "", fmt.Errorf("old checkpoint: %v", err)
		}
		if old.Size > cp.Size {
			return "", fmt.Errorf("old checkpoint size %d is larger than the current %d", old.Size, cp.Size)
		}
		oldRoot, err := treeHash(old.Size, storage)
		if err != nil {
			return "", err
		}
		if oldRoot != old.Root {
			return "", fmt.Errorf("old checkpoint root %s differs from tlog.TreeHash(%d) of the export %s",
				old.Root, old.Size, oldRoot)
		}
	}

	if cfg.baseURL == "" {
		return summary + "; proofs not checked (no -url)", nil
	}
	if cp.Size == 0 {
		return summary + "; empty tree: no proofs to check", nil
	}

	// 4. Inclusion proofs: first, middle, last and a few more, via tlog.CheckRecord.
	indexes := uniqueInRange([]int64{0, 1, cp.Size / 3, cp.Size / 2, cp.Size - 2, cp.Size - 1}, 0, cp.Size-1)
	for _, index := range indexes {
		if err := cfg.checkInclusion(storage, lines, cp.Size, cp.Root, index); err != nil {
			return "", err
		}
	}
	summary += fmt.Sprintf("; inclusion proofs for indexes %v verified by tlog.CheckRecord", indexes)

	// Receipts bundle an entry, its inclusion proof (also in C2SP tlog-proof form) and a checkpoint.
	if cfg.token != "" {
		receipts := uniqueInRange([]int64{0, cp.Size / 2, cp.Size - 1}, 0, cp.Size-1)
		for _, seq := range receipts {
			if err := cfg.checkReceipt(lines, seq, logVerifiers, verifiers, activeByRegion, regions, keys.Origin); err != nil {
				return "", fmt.Errorf("receipt %d: %v", seq, err)
			}
		}
		summary += fmt.Sprintf("; receipts %v verified by note.Open and tlog.CheckRecord", receipts)
	}

	// 5. Consistency proofs from older sizes (and the old checkpoint) via tlog.CheckTree.
	var sizes []int64
	if old != nil {
		sizes = append(sizes, old.Size)
	}
	sizes = append(sizes, 1, 2, 4, cp.Size/2, cp.Size-1, cp.Size)
	sizes = uniqueInRange(sizes, 1, cp.Size)
	for _, m := range sizes {
		if err := cfg.checkConsistency(storage, m, cp.Size, cp.Root); err != nil {
			return "", err
		}
	}
	summary += fmt.Sprintf("; consistency proofs from sizes %v to %d verified by tlog.CheckTree", sizes, cp.Size)
	if old != nil {
		summary += fmt.Sprintf(" (including the old checkpoint of size %d)", old.Size)
	}
	return summary, nil
}

// treeHash is tlog.TreeHash, except for the empty tree: tlog defines its hash
// as all zeros, RFC 9162 (and so C2SP tlog-checkpoint) as SHA-256 of nothing.
func treeHash(n int64, storage memoryHashes) (tlog.Hash, error) {
	if n == 0 {
		return tlog.Hash(sha256.Sum256(nil)), nil
	}
	h, err := tlog.TreeHash(n, storage)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("tlog.TreeHash(%d): %v", n, err)
	}
	return h, nil
}

func signedBy(logVerifiers []note.Verifier, regions []string) string {
	if len(logVerifiers) > 0 {
		return "signed by the log key " + logVerifiers[0].Name()
	}
	return "cosigned by " + strings.Join(regions, ", ")
}

// openCheckpoint opens a signed checkpoint with note.Open and parses its text.
// Where a log key is published, the checkpoint must carry its valid signature;
// a deployment from before the log key (none published) had every region's
// active key cosign instead.
func openCheckpoint(raw []byte, logVerifiers, verifiers []note.Verifier, activeByRegion map[string][]note.Verifier,
	regions []string, origin string) (*checkpoint, error) {
	if len(logVerifiers) > 0 {
		n, err := note.Open(raw, note.VerifierList(logVerifiers...))
		if err != nil {
			return nil, fmt.Errorf("note.Open with the log key: %v", err)
		}
		return checkedCheckpoint(n.Text, origin)
	}
	n, err := note.Open(raw, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("note.Open: %v", err)
	}
	signed := map[string]bool{}
	for _, sig := range n.Sigs {
		signed[fmt.Sprintf("%s+%08x", sig.Name, sig.Hash)] = true
	}
	for _, region := range regions {
		found := false
		for _, v := range activeByRegion[region] {
			if signed[fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())] {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no valid signature by region %s (verified: %d, unverified: %d)",
				region, len(n.Sigs), len(n.UnverifiedSigs))
		}
	}
	return checkedCheckpoint(n.Text, origin)
}

func checkedCheckpoint(text, origin string) (*checkpoint, error) {
	cp, err := parseCheckpoint(text)
	if err != nil {
		return nil, err
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("origin %q, but the keys publish origin %q", cp.Origin, origin)
	}
	return cp, nil
}

// parseCheckpoint parses a C2SP tlog-checkpoint note text: origin line,
// decimal tree size, base64 root hash, then optional extension lines.
// (tlog.ParseTree reads only the go.sum database's own origin line,
// "go.sum database tree", so the three lines are parsed here.)
func parseCheckpoint(text string) (*checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("checkpoint text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("checkpoint has %d lines, needs origin, size and root hash", len(lines))
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return nil, errors.New("checkpoint has an empty extension line")
		}
	}
	if lines[0] == "" {
		return nil, errors.New("checkpoint origin is empty")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return nil, fmt.Errorf("malformed checkpoint size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("malformed checkpoint root hash %q: %v", lines[2], err)
	}
	return &checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// splitLines splits JSON Lines into the exact bytes of each line, without the newline.
func splitLines(raw []byte) ([][]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if raw[len(raw)-1] != '\n' {
		return nil, errors.New("the last line does not end with a newline")
	}
	lines := bytes.Split(raw[:len(raw)-1], []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			return nil, fmt.Errorf("line %d is empty", i+1)
		}
		var entry struct {
			Seq *int64 `json:"seq"`
		}
		if err := json.Unmarshal(line, &entry); err != nil {
			return nil, fmt.Errorf("line %d is not a JSON object: %v", i+1, err)
		}
		if entry.Seq == nil || *entry.Seq != int64(i) {
			return nil, fmt.Errorf("line %d does not hold seq %d", i+1, i)
		}
	}
	return lines, nil
}

// storeRecords builds the tlog hash storage of all lines with tlog.StoredHashes.
func storeRecords(lines [][]byte) (memoryHashes, error) {
	var storage memoryHashes
	for i, line := range lines {
		n := int64(i)
		if want := tlog.StoredHashIndex(0, n); want != int64(len(storage)) {
			return nil, fmt.Errorf("tlog storage out of step at record %d: index %d, have %d", n, want, len(storage))
		}
		hashes, err := tlog.StoredHashes(n, line, storage)
		if err != nil {
			return nil, fmt.Errorf("tlog.StoredHashes(%d): %v", n, err)
		}
		storage = append(storage, hashes...)
	}
	return storage, nil
}

func (cfg *config) checkInclusion(storage memoryHashes, lines [][]byte, size int64, root tlog.Hash, index int64) error {
	q := url.Values{"index": {strconv.FormatInt(index, 10)}, "tree_size": {strconv.FormatInt(size, 10)}}
	served, err := cfg.proof("/proofs/inclusion", q)
	if err != nil {
		return err
	}
	leaf := tlog.RecordHash(lines[index])
	if err := tlog.CheckRecord(tlog.RecordProof(served), size, root, index, leaf); err != nil {
		return fmt.Errorf("tlog.CheckRecord(index %d, tree size %d) rejects the served proof %v: %v",
			index, size, served, err)
	}
	local, err := tlog.ProveRecord(size, index, storage)
	if err != nil {
		return fmt.Errorf("tlog.ProveRecord(%d, %d): %v", size, index, err)
	}
	if !sameHashes(served, local) {
		return fmt.Errorf("inclusion proof of %d in %d: served %v, tlog.ProveRecord gives %v", index, size, served, local)
	}
	// The proof must bind the leaf: another leaf must not verify at that index.
	other := tlog.RecordHash(append([]byte("tampered "), lines[index]...))
	if tlog.CheckRecord(tlog.RecordProof(served), size, root, index, other) == nil {
		return fmt.Errorf("tlog.CheckRecord accepts a wrong leaf at index %d", index)
	}
	return nil
}

func (cfg *config) checkConsistency(storage memoryHashes, first, second int64, secondRoot tlog.Hash) error {
	q := url.Values{"first": {strconv.FormatInt(first, 10)}, "second": {strconv.FormatInt(second, 10)}}
	served, err := cfg.proof("/proofs/consistency", q)
	if err != nil {
		return err
	}
	firstRoot, err := treeHash(first, storage)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(tlog.TreeProof(served), second, secondRoot, first, firstRoot); err != nil {
		return fmt.Errorf("tlog.CheckTree(%d -> %d) rejects the served proof %v: %v", first, second, served, err)
	}
	local, err := tlog.ProveTree(second, first, storage)
	if err != nil {
		return fmt.Errorf("tlog.ProveTree(%d, %d): %v", second, first, err)
	}
	if !sameHashes(served, local) {
		return fmt.Errorf("consistency proof %d -> %d: served %v, tlog.ProveTree gives %v", first, second, served, local)
	}
	return nil
}

const tlogProofHeader = "c2sp.org/tlog-proof@v1"

func (cfg *config) checkReceipt(lines [][]byte, seq int64, logVerifiers, verifiers []note.Verifier,
	activeByRegion map[string][]note.Verifier, regions []string, origin string) error {
	raw, err := cfg.get("/receipts/"+strconv.FormatInt(seq, 10), true)
	if err != nil {
		return err
	}
	var r struct {
		Entry          string   `json:"entry"`
		LeafIndex      int64    `json:"leaf_index"`
		LeafHash       string   `json:"leaf_hash"`
		TreeSize       int64    `json:"tree_size"`
		InclusionProof []string `json:"inclusion_proof"`
		Checkpoint     string   `json:"checkpoint"`
		TlogProof      string   `json:"tlog_proof"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if r.LeafIndex != seq || r.Entry != string(lines[seq]) {
		return fmt.Errorf("leaf_index %d or entry differs from export line %d", r.LeafIndex, seq)
	}
	leaf := tlog.RecordHash([]byte(r.Entry))
	if r.LeafHash != leaf.String() {
		return fmt.Errorf("leaf_hash %s, tlog.RecordHash gives %s", r.LeafHash, leaf)
	}
	cp, err := openCheckpoint([]byte(r.Checkpoint), logVerifiers, verifiers, activeByRegion, regions, origin)
	if err != nil {
		return fmt.Errorf("checkpoint: %v", err)
	}
	if cp.Size != r.TreeSize {
		return fmt.Errorf("tree_size %d, its checkpoint's size %d", r.TreeSize, cp.Size)
	}
	proof, err := parseHashes(r.InclusionProof)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, seq, leaf); err != nil {
		return fmt.Errorf("tlog.CheckRecord: %v", err)
	}
	// The tlog-proof: header, optional extra line, "index N", the hashes, a blank line, the checkpoint.
	head, note, found := strings.Cut(r.TlogProof, "\n\n")
	if !found || note != r.Checkpoint {
		return errors.New("tlog_proof does not end with a blank line and the receipt's checkpoint")
	}
	fields := strings.Split(head, "\n")
	if fields[0] != tlogProofHeader {
		return fmt.Errorf("tlog_proof header %q", fields[0])
	}
	fields = fields[1:]
	if len(fields) > 0 && strings.HasPrefix(fields[0], "extra ") {
		fields = fields[1:]
	}
	if len(fields) == 0 || fields[0] != "index "+strconv.FormatInt(seq, 10) {
		return fmt.Errorf("tlog_proof has no line \"index %d\"", seq)
	}
	textProof, err := parseHashes(fields[1:])
	if err != nil {
		return fmt.Errorf("tlog_proof: %v", err)
	}
	if !sameHashes(textProof, proof) {
		return errors.New("tlog_proof hashes differ from inclusion_proof")
	}
	return nil
}

func parseHashes(texts []string) (tlog.RecordProof, error) {
	hashes := make(tlog.RecordProof, len(texts))
	for i, text := range texts {
		h, err := tlog.ParseHash(text)
		if err != nil {
			return nil, fmt.Errorf("hash %d %q: %v", i, text, err)
		}
		hashes[i] = h
	}
	return hashes, nil
}

// proof fetches {"hashes": [base64...]} and parses each hash with tlog.ParseHash.
func (cfg *config) proof(path string, q url.Values) ([]tlog.Hash, error) {
	raw, err := cfg.get(path+"?"+q.Encode(), false)
	if err != nil {
		return nil, err
	}
	var body struct {
		Hashes *[]string `json:"hashes"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Hashes == nil {
		return nil, fmt.Errorf("GET %s?%s: not a {\"hashes\": [...]} object: %.200s", path, q.Encode(), raw)
	}
	hashes, err := parseHashes(*body.Hashes)
	if err != nil {
		return nil, fmt.Errorf("GET %s?%s: %v", path, q.Encode(), err)
	}
	return hashes, nil
}

// document reads a file when one is given, and GETs the ledger path otherwise.
func (cfg *config) document(file, path string, auth bool) ([]byte, error) {
	if file != "" {
		return os.ReadFile(file)
	}
	return cfg.get(path, auth)
}

func (cfg *config) get(path string, auth bool) ([]byte, error) {
	target := cfg.baseURL + apiPrefix + path
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+cfg.token)
	}
	resp, err := cfg.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.300s", target, resp.Status, body)
	}
	return body, nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func uniqueInRange(values []int64, lo, hi int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, v := range values {
		if v >= lo && v <= hi && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
