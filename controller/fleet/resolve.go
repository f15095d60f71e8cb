package fleet

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// ErrCycle is wrapped by the errors that report an include cycle.
var ErrCycle = errors.New("include cycle")

// Device is what membership resolution needs to know of a device.
type Device struct {
	ID     string
	Labels map[string]string
}

// Group is what membership resolution needs to know of a group.
type Group struct {
	Name     string
	Selector string   // label selector (see ParseSelector); empty: none
	Devices  []string // direct members
	Includes []string // child groups whose members are members of this group
}

// CheckInclude reports whether parent may include child given the existing
// groups: it refuses a group including itself and an include that would close
// a cycle, naming the cycle (e.g. "a → b → c → a"). Both errors wrap ErrCycle.
func CheckInclude(groups []Group, parent, child string) error {
	if parent == child {
		return fmt.Errorf("%w: group %s cannot include itself", ErrCycle, parent)
	}
	edges := make(map[string][]string, len(groups))
	for _, g := range groups {
		edges[g.Name] = g.Includes
	}
	// A cycle closes iff parent is reachable from child.
	path := findPath(edges, child, parent)
	if path == nil {
		return nil
	}
	cycle := append([]string{parent}, path...)
	return fmt.Errorf("%w: %s including %s would make the cycle %s; remove one of these includes first", ErrCycle, parent, child, strings.Join(cycle, " → "))
}

// findPath returns a path of include edges from "from" to "to" (both ends
// included), or nil when there is none. Depth-first in the given edge order,
// so the answer is deterministic.
func findPath(edges map[string][]string, from, to string) []string {
	seen := map[string]bool{}
	var path []string
	var visit func(n string) bool
	visit = func(n string) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		path = append(path, n)
		if n == to {
			return true
		}
		for _, c := range edges[n] {
			if visit(c) {
				return true
			}
		}
		path = path[:len(path)-1]
		return false
	}
	if visit(from) {
		return path
	}
	return nil
}

// FindCycle returns an include cycle among groups as a path whose first and
// last elements are the same group, or nil when there is none.
func FindCycle(groups []Group) []string {
	edges := make(map[string][]string, len(groups))
	for _, g := range groups {
		edges[g.Name] = g.Includes
	}
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(groups))
	var stack []string
	var cycle []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, c := range edges[n] {
			switch color[c] {
			case grey:
				i := slices.Index(stack, c)
				cycle = append(slices.Clone(stack[i:]), c)
				return true
			case white:
				if visit(c) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, g := range groups {
		if color[g.Name] == white && visit(g.Name) {
			return cycle
		}
	}
	return nil
}

// Membership is the resolved membership of a fleet: every group's full member
// set and every device's full group list. It is immutable once built.
type Membership struct {
	ids       []string       // device ids, sorted; a device's index is its rank
	groupIdx  map[string]int // group name → index into groupName and members
	groupName []string       // sorted
	members   []bitset       // by group index
	devIdx    map[string]int // device id → index
	groupsOf  [][]string     // by device index, sorted group names
}

// bitset is a set of device indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)   { b[i/64] |= 1 << (uint(i) % 64) }
func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

// each calls fn for every index in the set, in increasing order.
func (b bitset) each(fn func(int)) {
	for w, word := range b {
		for word != 0 {
			t := bits.TrailingZeros64(word)
			fn(w*64 + t)
			word &= word - 1
		}
	}
}

// Resolve computes every group's full member set (direct members, devices its
// selector matches, and the members of the groups it includes, transitively)
// and every device's sorted group list. Direct members that are not among
// devices are ignored. An include of an unknown group, a bad selector or an
// include cycle is an error.
//
// Cost: one pass over the devices' labels to index them, one posting-list walk
// (or full scan for selectors without a k=v term) per selector, and one bitset
// union per include edge; each group is resolved once.
func Resolve(devices []Device, groups []Group) (*Membership, error) {
	// Device indices follow id order, so walking a bitset yields sorted ids.
	n := len(devices)
	byID := make([]int, n)
	for i := range byID {
		byID[i] = i
	}
	slices.SortFunc(byID, func(a, b int) int { return strings.Compare(devices[a].ID, devices[b].ID) })
	sorted := make([]Device, n)
	ids := make([]string, n)
	devIdx := make(map[string]int, n)
	for r, i := range byID {
		sorted[r] = devices[i]
		ids[r] = devices[i].ID
		devIdx[devices[i].ID] = r
	}
	devices = sorted
	gIdx := make(map[string]int, len(groups))
	for i, g := range groups {
		if _, dup := gIdx[g.Name]; dup {
			return nil, fmt.Errorf("%w: group %s appears twice", ErrInvalid, g.Name)
		}
		gIdx[g.Name] = i
	}
	if c := FindCycle(groups); c != nil {
		return nil, fmt.Errorf("%w: %s", ErrCycle, strings.Join(c, " → "))
	}

	// Inverted index: label key → value → device indices (increasing).
	var index map[string]map[string][]int
	buildIndex := func() {
		index = make(map[string]map[string][]int)
		for i, d := range devices {
			for k, v := range d.Labels {
				byVal := index[k]
				if byVal == nil {
					byVal = make(map[string][]int)
					index[k] = byVal
				}
				byVal[v] = append(byVal[v], i)
			}
		}
	}

	own := make([]bitset, len(groups)) // direct + selector
	for gi, g := range groups {
		set := newBitset(n)
		for _, id := range g.Devices {
			if i, ok := devIdx[id]; ok {
				set.set(i)
			}
		}
		sel, err := ParseSelector(g.Selector)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", g.Name, err)
		}
		if !sel.Empty() {
			// Start from the smallest posting list of a k=v term, if any.
			var cand []int
			haveCand := false
			for _, r := range sel.reqs {
				if r.op != opEqual {
					continue
				}
				if index == nil {
					buildIndex()
				}
				pl := index[r.key][r.value]
				if !haveCand || len(pl) < len(cand) {
					cand, haveCand = pl, true
				}
			}
			if haveCand {
				for _, i := range cand {
					if sel.Matches(devices[i].Labels) {
						set.set(i)
					}
				}
			} else {
				for i, d := range devices {
					if sel.Matches(d.Labels) {
						set.set(i)
					}
				}
			}
		}
		own[gi] = set
	}

	// Full sets, memoized: each group is computed once, after its children.
	full := make([]bitset, len(groups))
	var resolve func(gi int) (bitset, error)
	resolve = func(gi int) (bitset, error) {
		if full[gi] != nil {
			return full[gi], nil
		}
		g := groups[gi]
		set := own[gi]
		for _, child := range g.Includes {
			ci, ok := gIdx[child]
			if !ok {
				return nil, fmt.Errorf("%w: group %s includes unknown group %s", ErrInvalid, g.Name, child)
			}
			cs, err := resolve(ci)
			if err != nil {
				return nil, err
			}
			set.or(cs)
		}
		full[gi] = set
		return set, nil
	}
	for gi := range groups {
		if _, err := resolve(gi); err != nil {
			return nil, err
		}
	}

	// Groups are visited in name order, so every device's list comes out
	// sorted without a sort per device.
	gOrder := make([]int, len(groups))
	for i := range gOrder {
		gOrder[i] = i
	}
	slices.SortFunc(gOrder, func(a, b int) int { return strings.Compare(groups[a].Name, groups[b].Name) })

	m := &Membership{
		ids:       ids,
		groupIdx:  make(map[string]int, len(groups)),
		groupName: make([]string, len(groups)),
		members:   make([]bitset, len(groups)),
		devIdx:    devIdx,
		groupsOf:  make([][]string, n),
	}
	for pos, gi := range gOrder {
		name := groups[gi].Name
		m.groupIdx[name] = pos
		m.groupName[pos] = name
		m.members[pos] = full[gi]
		full[gi].each(func(i int) {
			m.groupsOf[i] = append(m.groupsOf[i], name)
		})
	}
	return m, nil
}

// Members returns the sorted full member set of group (nil for an unknown or
// empty group).
func (m *Membership) Members(group string) []string {
	pos, ok := m.groupIdx[group]
	if !ok {
		return nil
	}
	var out []string
	m.members[pos].each(func(i int) { out = append(out, m.ids[i]) })
	return out
}

// GroupsOf returns the sorted names of every group device belongs to (nil for
// none). The slice is shared: do not modify it.
func (m *Membership) GroupsOf(device string) []string {
	i, ok := m.devIdx[device]
	if !ok {
		return nil
	}
	return m.groupsOf[i]
}

// Groups returns the sorted names of all groups.
func (m *Membership) Groups() []string { return slices.Clone(m.groupName) }
