package access

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchFleet is a plant of 10k devices in 500 groups (45 lines of 10 cells,
// plus 5 selector groups), 1000 users in 100 teams with 3 grants each, and
// user "u0" with 50 grants of its own and through its teams.
type benchFleet struct {
	in      Input
	devices []Resource
	groups  []Resource
}

func newBenchFleet() *benchFleet {
	const (
		lines     = 45
		cellsPer  = 10
		selectors = 5
		devices   = 10000
		users     = 1000
		teams     = 100
	)
	includes := map[string][]string{}
	var cells []string
	for l := range lines {
		line := fmt.Sprintf("line-%d", l)
		for c := range cellsPer {
			cell := fmt.Sprintf("cell-%d-%d", l, c)
			includes[line] = append(includes[line], cell)
			cells = append(cells, cell)
		}
	}
	h := NewHierarchy(includes)
	f := &benchFleet{}
	for i := range devices {
		direct := []string{cells[i%len(cells)], fmt.Sprintf("sel-%d", i%selectors)}
		f.devices = append(f.devices, h.Device(fmt.Sprintf("d-%d", i), direct))
	}
	for _, c := range cells {
		f.groups = append(f.groups, h.Group(c))
	}
	f.in.Roles = BuiltinRoles()
	f.in.Roles = append(f.in.Roles, Role{Name: "installer", Actions: []Action{DeviceView, DeviceAppInstall}})
	roles := []string{RoleOperator, RoleViewer, "installer", RoleGroupOwner}
	id := 0
	grant := func(s Subject, role string, sc Scope) {
		id++
		f.in.Grants = append(f.in.Grants, Grant{ID: fmt.Sprintf("g-%d", id), Subject: s, Role: role, Scope: sc})
	}
	for u := range users {
		name := fmt.Sprintf("u%d", u)
		f.in.Users = append(f.in.Users, User{Name: name, Teams: []string{fmt.Sprintf("t%d", u%teams), fmt.Sprintf("t%d", (u+7)%teams)}})
		if u == 0 {
			continue
		}
		grant(UserSubject(name), roles[u%len(roles)], GroupScope(cells[u%len(cells)]))
		grant(UserSubject(name), RoleViewer, DeviceScope(fmt.Sprintf("d-%d", u*7%devices)))
		grant(UserSubject(name), RoleViewer, AppScope(fmt.Sprintf("app-%d", u%50)))
	}
	for t := range teams {
		grant(TeamSubject(fmt.Sprintf("t%d", t)), RoleViewer, GroupScope(cells[t*3%len(cells)]))
	}
	// u0: 48 grants of its own plus 2 team grants = 50.
	for i := range 10 {
		grant(UserSubject("u0"), RoleViewer, GroupScope(fmt.Sprintf("line-%d", i)))
	}
	for i := range 10 {
		grant(UserSubject("u0"), RoleOperator, GroupScope(cells[100+i]))
	}
	for i := range 23 {
		grant(UserSubject("u0"), "installer", DeviceScope(fmt.Sprintf("d-%d", 5000+i*13)))
	}
	for i := range 5 {
		grant(UserSubject("u0"), RoleViewer, AppScope(fmt.Sprintf("app-%d", i)))
	}
	return f
}

// BenchmarkControllerDecide: may u0 (50 grants) do an action on one of 10k
// devices? Target < 1 ms per decision.
func BenchmarkControllerDecide(b *testing.B) {
	f := newBenchFleet()
	e := mustCompile(b, f.in)
	b.Run("Allowed", func(b *testing.B) {
		i := 0
		for b.Loop() {
			e.Allowed("u0", DeviceAppInstall, f.devices[i%len(f.devices)])
			i++
		}
	})
	b.Run("Decide-allowed", func(b *testing.B) {
		dev := f.devices[9] // cell-0-9 in line-0: allowed by the line-0 grant
		if !e.Allowed("u0", DeviceView, dev) {
			b.Fatal("fixture: u0 should view d-9")
		}
		for b.Loop() {
			e.Decide("u0", DeviceView, dev)
		}
	})
	b.Run("Decide-denied", func(b *testing.B) {
		dev := f.devices[9999]
		if e.Allowed("u0", DeviceAppInstall, dev) {
			b.Fatal("fixture: u0 should not install on d-9999")
		}
		for b.Loop() {
			e.Decide("u0", DeviceAppInstall, dev)
		}
	})
	b.Run("ListDevices-10k", func(b *testing.B) {
		// `devices ls`: filter the whole fleet by device:view.
		for b.Loop() {
			n := 0
			for _, d := range f.devices {
				if e.Allowed("u0", DeviceView, d) {
					n++
				}
			}
			if n == 0 {
				b.Fatal("u0 sees nothing")
			}
		}
	})
}

// BenchmarkCompile: compile the evaluator from 3000+ grants, and every
// device's policy.
func BenchmarkCompile(b *testing.B) {
	f := newBenchFleet()
	b.Run("Evaluator", func(b *testing.B) {
		for b.Loop() {
			mustCompile(b, f.in)
		}
	})
	b.Run("DevicePolicy-10k", func(b *testing.B) {
		e := mustCompile(b, f.in)
		for b.Loop() {
			for _, d := range f.devices {
				e.DevicePolicy(d)
			}
		}
	})
}

// BenchmarkDeviceDecide: the agent's local decision from its compiled
// policy. Target p99 < 20 µs; reports p99 in ns.
func BenchmarkDeviceDecide(b *testing.B) {
	f := newBenchFleet()
	dev := f.devices[5000] // u0 holds installer on it, and operator through cell grants elsewhere
	p, err := CompileForDevice(f.in, dev)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := p.Evaluator()
	if err != nil {
		b.Fatal(err)
	}
	local := p.Device(dev.ID)
	if !ev.Allowed("u0", DeviceAppInstall, local) {
		b.Fatal("fixture: u0 should install on d-5000")
	}
	for _, bc := range []struct {
		name   string
		decide func()
	}{
		{"Allowed", func() { ev.Allowed("u0", DeviceAppInstall, local) }},
		{"Decide", func() { ev.Decide("u0", DeviceAppInstall, local) }},
		{"Decide-denied", func() { ev.Decide("u1", DeviceSideload, local) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				start := time.Now()
				bc.decide()
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(start))
				}
			}
			reportP99(b, lat)
		})
	}
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
