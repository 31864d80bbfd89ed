/**
 * `evidencecheck`: an evidence bundle checked by code Custody did not write — Go's archive/zip
 * reads the zip (Zip64 included), crypto/sha256 checks every file against the manifest, and
 * Go's reference transparency-log code (golang.org/x/mod/sumdb/note: note.Open;
 * golang.org/x/mod/sumdb/tlog: tlog.CheckRecord, tlog.RecordHash) checks each checkpoint's
 * signature and each C2SP tlog-proof. The tests use it as the independent verifier of exported
 * bundles, the benchmark as the baseline of `custody verify-bundle`.
 *
 *   evidencecheck BUNDLE.zip            → "OK files=N"  (the zip alone)
 *   evidencecheck BUNDLE.zip VKEY...    → "OK items=N logs=M files=F seconds=S", else "FAIL: …", exit 1
 *
 * Built on first use with Debian's Go and golang-golang-x-mod-dev (as ../shared/tools/tlogcheck
 * is) into $CUSTODY_GO_TOOLS (default /tmp/custody-go-tools), named by the hash of its source.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const EVIDENCECHECK_GO = String.raw`package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type logInfo struct {
	Origin     string ` + '`json:"origin"`' + String.raw`
	Checkpoint string ` + '`json:"checkpoint"`' + String.raw`
	Size       int64  ` + '`json:"size"`' + String.raw`
}

type item struct {
	Log    string ` + '`json:"log"`' + String.raw`
	Index  int64  ` + '`json:"index"`' + String.raw`
	Entry  string ` + '`json:"entry"`' + String.raw`
	Record string ` + '`json:"record"`' + String.raw`
	Proof  string ` + '`json:"proof"`' + String.raw`
}

type manifest struct {
	Format string             ` + '`json:"format"`' + String.raw`
	Count  int                ` + '`json:"count"`' + String.raw`
	Logs   map[string]logInfo ` + '`json:"logs"`' + String.raw`
	Items  []item             ` + '`json:"items"`' + String.raw`
	Sha256 map[string]string  ` + '`json:"sha256"`' + String.raw`
}

type tree struct {
	size int64
	root tlog.Hash
	text string
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", a...)
	os.Exit(1)
}

// parseProof reads a C2SP tlog-proof: "c2sp.org/tlog-proof@v1", optional "extra <b64>",
// "index <n>", the proof hashes in base64 one per line, a blank line, the checkpoint note.
func parseProof(b []byte) (int64, tlog.RecordProof, string, error) {
	s := string(b)
	sep := strings.Index(s, "\n\n")
	if sep < 0 {
		return 0, nil, "", fmt.Errorf("no blank line")
	}
	lines := strings.Split(s[:sep], "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return 0, nil, "", fmt.Errorf("bad header %q", lines[0])
	}
	at := 1
	if at < len(lines) && strings.HasPrefix(lines[at], "extra ") {
		at++
	}
	if at >= len(lines) || !strings.HasPrefix(lines[at], "index ") {
		return 0, nil, "", fmt.Errorf("no index line")
	}
	idx, err := strconv.ParseInt(lines[at][len("index "):], 10, 64)
	if err != nil {
		return 0, nil, "", err
	}
	var proof tlog.RecordProof
	for _, l := range lines[at+1:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != tlog.HashSize {
			return 0, nil, "", fmt.Errorf("bad proof hash %q", l)
		}
		var x tlog.Hash
		copy(x[:], h)
		proof = append(proof, x)
	}
	return idx, proof, s[sep+2:], nil
}

func main() {
	if len(os.Args) < 2 {
		die("usage: evidencecheck BUNDLE.zip [VKEY...]")
	}
	start := time.Now()
	zr, err := zip.OpenReader(os.Args[1])
	if err != nil {
		die("open zip: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			die("%s: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc) // archive/zip checks the CRC-32 at the end
		rc.Close()
		if err != nil {
			die("%s: %v", f.Name, err)
		}
		if _, dup := files[f.Name]; dup {
			die("%s is in the zip twice", f.Name)
		}
		files[f.Name] = b
	}
	if len(os.Args) == 2 {
		fmt.Printf("OK files=%d\n", len(files))
		return
	}
	var verifiers []note.Verifier
	for _, k := range os.Args[2:] {
		v, err := note.NewVerifier(k)
		if err != nil {
			die("key %q: %v", k, err)
		}
		verifiers = append(verifiers, v)
	}
	known := note.VerifierList(verifiers...)

	mb := files["manifest.json"]
	sum := sha256.Sum256(mb)
	if string(files["manifest.json.sha256"]) != hex.EncodeToString(sum[:])+"  manifest.json\n" {
		die("manifest.json.sha256 does not match manifest.json")
	}
	var m manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		die("manifest.json: %v", err)
	}
	if m.Format != "custody-evidence/v1" || m.Count != len(m.Items) {
		die("manifest.json: format %q, count %d for %d items", m.Format, m.Count, len(m.Items))
	}
	for name, b := range files {
		if name == "manifest.json" || name == "manifest.json.sha256" {
			continue
		}
		want, ok := m.Sha256[name]
		if !ok {
			die("%s is not listed in manifest.json", name)
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != want {
			die("%s: SHA-256 differs from manifest.json", name)
		}
	}
	if len(m.Sha256) != len(files)-2 {
		die("manifest.json lists %d files, the zip has %d others", len(m.Sha256), len(files)-2)
	}

	trees := map[string]tree{}
	for name, l := range m.Logs {
		text := files[l.Checkpoint]
		n, err := note.Open(text, known)
		if err != nil {
			die("checkpoint of %s: %v", name, err)
		}
		lines := strings.Split(n.Text, "\n")
		if len(lines) < 4 || lines[0] != l.Origin {
			die("checkpoint of %s: origin %q", name, lines[0])
		}
		size, err := strconv.ParseInt(lines[1], 10, 64)
		if err != nil || size != l.Size {
			die("checkpoint of %s: size %q", name, lines[1])
		}
		rb, err := base64.StdEncoding.DecodeString(lines[2])
		if err != nil || len(rb) != tlog.HashSize {
			die("checkpoint of %s: root %q", name, lines[2])
		}
		var root tlog.Hash
		copy(root[:], rb)
		trees[name] = tree{size, root, string(text)}
	}

	for _, it := range m.Items {
		t, ok := trees[it.Log]
		if !ok {
			die("item %s %d: no such log in manifest.json", it.Log, it.Index)
		}
		entry, ok := files[it.Entry]
		if !ok {
			die("%s is missing", it.Entry)
		}
		idx, proof, cp, err := parseProof(files[it.Proof])
		if err != nil {
			die("%s: %v", it.Proof, err)
		}
		if idx != it.Index || cp != t.text {
			die("%s: proves index %d against another checkpoint than the log's", it.Proof, idx)
		}
		if err := tlog.CheckRecord(proof, t.size, t.root, idx, tlog.RecordHash(entry)); err != nil {
			die("%s: %v", it.Proof, err)
		}
		sep := bytes.Index(entry, []byte("\n\n"))
		if sep < 0 {
			die("%s: no end of header", it.Entry)
		}
		header := string(entry[:sep])
		rec := files[it.Record]
		if i := strings.Index(header, "\nblob sha256:"); i >= 0 {
			f := strings.Fields(header[i+len("\nblob sha256:"):])
			rs := sha256.Sum256(rec)
			if len(f) != 2 || hex.EncodeToString(rs[:]) != f[0] || strconv.Itoa(len(rec)) != f[1] {
				die("%s: not the blob its entry names", it.Record)
			}
		} else if !bytes.Equal(entry[sep+2:], rec) {
			die("%s: not the record inside its entry", it.Record)
		}
	}
	fmt.Printf("OK items=%d logs=%d files=%d seconds=%.3f\n", len(m.Items), len(m.Logs), len(files), time.Since(start).Seconds())
}
`;

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Path of the built evidencecheck. Needs `go` and /usr/share/gocode/src/golang.org/x/mod
 * (build ../shared/tools/tlogcheck first: its build.sh installs both from Debian when missing).
 * Throws with the compiler output when it cannot be built.
 */
export function evidenceCheckTool(): string {
  const dir = process.env.CUSTODY_GO_TOOLS ?? '/tmp/custody-go-tools';
  const tag = createHash('sha256').update(EVIDENCECHECK_GO).digest('hex').slice(0, 12);
  const out = join(dir, `evidencecheck-${tag}`);
  if (isExecutable(out)) return out;
  if (!existsSync('/usr/share/gocode/src/golang.org/x/mod/sumdb')) {
    throw new Error('evidencecheck needs golang-golang-x-mod-dev (/usr/share/gocode); build ../shared/tools/tlogcheck first, it installs it');
  }
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'evidencecheck-'));
  try {
    writeFileSync(join(work, 'main.go'), EVIDENCECHECK_GO);
    const tmp = `${out}.build-${process.pid}`;
    execFileSync('go', ['build', '-o', tmp, '.'], {
      cwd: work,
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: join(dir, 'gocache'), GOFLAGS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 600_000,
    });
    renameSync(tmp, out); // atomic: parallel builders never see half a binary
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`evidencecheck: go build failed: ${err.stderr?.toString() || err.message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
