// Command porcupine-driver checks a valthree history (JSONL, docs/verification.md) with
// Porcupine, for the comparison in docs/benchmarks.md ("Crashed writes against Porcupine").
//
//	porcupine-driver FILE [TIMEOUT_SECONDS]
//
// The model is the register of src/check/model.rs, written again here: one register per
// key (Porcupine's Partition), GET/SET/DEL/INCR/APPEND/CAS/GETDEL/GETSET, FLUSHALL a delete
// in every key's partition, and a state hash. An operation whose outcome is unknown (`info`,
// or never completed) returns at +∞ and accepts any answer, except a read, which changes
// nothing and is dropped; a failed one (`fail`) certainly did not happen and is dropped.
// It prints the verdict and the seconds spent reading and checking.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

type event struct {
	Process json.RawMessage `json:"process"`
	Type    string          `json:"type"`
	F       string          `json:"f"`
	Key     *string         `json:"key"`
	Value   json.RawMessage `json:"value"`
	Time    int64           `json:"time"`
}

type input struct {
	Key      string
	Op       string
	Value    string // SET, APPEND, GETSET: the argument; CAS: the new value
	Expected string // CAS
}

// output is what an operation answered; Known is false when its outcome is unknown.
type output struct {
	Known bool
	Nil   bool // a read of an absent key
	Str   string
	Int   int64
	Bool  bool
}

type state struct {
	Present bool
	Value   string
}

// integer reads a value as Redis' INCR does: "0", or an optional '-' and digits with no
// leading zero, within int64.
func integer(s string) (int64, bool) {
	if s == "0" {
		return 0, true
	}
	d := s
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || d[0] < '1' || d[0] > '9' {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func step(st interface{}, in interface{}, out interface{}) (bool, interface{}) {
	s := st.(state)
	i := in.(input)
	o := out.(output)
	read := func() bool { return o.Nil == !s.Present && (o.Nil || o.Str == s.Value) }
	switch i.Op {
	case "get":
		return !o.Known || read(), s
	case "set":
		return true, state{true, i.Value}
	case "del", "flushall":
		present := int64(0)
		if s.Present {
			present = 1
		}
		if o.Known && i.Op == "del" && o.Int != present {
			return false, s
		}
		return true, state{}
	case "incr":
		n := int64(0)
		ok := true
		if s.Present {
			n, ok = integer(s.Value)
		}
		if ok && n == math.MaxInt64 {
			ok = false
		}
		if !ok {
			return !o.Known, s // fails without effect
		}
		if o.Known && o.Int != n+1 {
			return false, s
		}
		return true, state{true, strconv.FormatInt(n+1, 10)}
	case "append":
		joined := s.Value + i.Value
		if o.Known && o.Int != int64(len(joined)) {
			return false, s
		}
		return true, state{true, joined}
	case "cas":
		equal := s.Present && s.Value == i.Expected
		if o.Known && o.Bool != equal {
			return false, s
		}
		if equal {
			return true, state{true, i.Value}
		}
		return true, s
	case "getdel":
		if o.Known && !read() {
			return false, s
		}
		return true, state{}
	case "getset":
		if o.Known && !read() {
			return false, s
		}
		return true, state{true, i.Value}
	}
	panic("unknown op " + i.Op)
}

func str(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		panic(fmt.Sprintf("expected a string, got %s", raw))
	}
	return s
}

func parseInput(e *event) input {
	in := input{Op: e.F}
	if e.Key != nil {
		in.Key = *e.Key
	}
	switch e.F {
	case "set", "append", "getset":
		in.Value = str(e.Value)
	case "cas":
		var pair []string
		if err := json.Unmarshal(e.Value, &pair); err != nil || len(pair) != 2 {
			panic(fmt.Sprintf("cas's value must be [expected, new], got %s", e.Value))
		}
		in.Expected, in.Value = pair[0], pair[1]
	}
	return in
}

func parseOutput(e *event) output {
	o := output{Known: true}
	switch e.F {
	case "get", "getdel", "getset":
		if len(e.Value) == 0 || string(e.Value) == "null" {
			o.Nil = true
		} else {
			o.Str = str(e.Value)
		}
	case "del", "incr", "append":
		if err := json.Unmarshal(e.Value, &o.Int); err != nil {
			panic(fmt.Sprintf("%s must return an integer, got %s", e.F, e.Value))
		}
	case "cas":
		if err := json.Unmarshal(e.Value, &o.Bool); err != nil {
			panic(fmt.Sprintf("cas must return a boolean, got %s", e.Value))
		}
	}
	return o
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: porcupine-driver FILE [TIMEOUT_SECONDS]")
		os.Exit(2)
	}
	timeout := 60 * time.Second
	if len(os.Args) > 2 {
		secs, err := strconv.Atoi(os.Args[2])
		if err != nil {
			panic(err)
		}
		timeout = time.Duration(secs) * time.Second
	}
	started := time.Now()
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	type open struct {
		in   input
		call int64
	}
	pending := map[string]open{}
	var ops []porcupine.Operation
	var flushes []porcupine.Operation
	keys := map[string]bool{}
	add := func(in input, call int64, out output, ret int64, client int) {
		if in.Op == "get" && !out.Known {
			return // a read of unknown outcome changes nothing and tells nothing
		}
		op := porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
		if in.Op == "flushall" {
			flushes = append(flushes, op)
		} else {
			keys[in.Key] = true
			ops = append(ops, op)
		}
	}
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<30)
	clients := map[string]int{}
	for scanner.Scan() {
		var e event
		if err := json.Unmarshal(scanner.Bytes(), &e); err != nil {
			panic(err)
		}
		p := string(e.Process)
		if p == `"nemesis"` {
			continue
		}
		if _, ok := clients[p]; !ok {
			clients[p] = len(clients)
		}
		switch e.Type {
		case "invoke":
			pending[p] = open{parseInput(&e), e.Time}
		case "ok":
			o := pending[p]
			delete(pending, p)
			add(o.in, o.call, parseOutput(&e), e.Time, clients[p])
		case "info":
			o := pending[p]
			delete(pending, p)
			add(o.in, o.call, output{}, math.MaxInt64, clients[p])
		case "fail":
			delete(pending, p) // certainly did not happen
		}
	}
	if err := scanner.Err(); err != nil {
		panic(err)
	}
	for p, o := range pending {
		add(o.in, o.call, output{}, math.MaxInt64, clients[p])
	}
	for _, fl := range flushes {
		for k := range keys {
			op := fl
			in := fl.Input.(input)
			in.Key = k
			op.Input = in
			ops = append(ops, op)
		}
	}
	read := time.Since(started)
	model := porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			for _, op := range history {
				k := op.Input.(input).Key
				byKey[k] = append(byKey[k], op)
			}
			names := make([]string, 0, len(byKey))
			for k := range byKey {
				names = append(names, k)
			}
			sort.Strings(names)
			parts := make([][]porcupine.Operation, 0, len(names))
			for _, k := range names {
				parts = append(parts, byKey[k])
			}
			return parts
		},
		Init:  func() interface{} { return state{} },
		Step:  step,
		Equal: func(a, b interface{}) bool { return a.(state) == b.(state) },
		Hash: func(s interface{}) uint64 {
			h := fnv.New64a()
			st := s.(state)
			if st.Present {
				h.Write([]byte{1})
				h.Write([]byte(st.Value))
			}
			return h.Sum64()
		},
	}
	result := porcupine.CheckOperationsTimeout(model, ops, timeout)
	verdict := map[porcupine.CheckResult]string{
		porcupine.Ok: "linearizable", porcupine.Illegal: "NOT linearizable", porcupine.Unknown: "unknown",
	}[result]
	fmt.Printf("%s (%d operations, %d keys; read %.1f s, total %.1f s)\n",
		verdict, len(ops), len(keys), read.Seconds(), time.Since(started).Seconds())
}
