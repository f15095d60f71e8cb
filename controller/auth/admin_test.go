package auth

import (
	"context"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
)

type memUsers struct{ users []store.User }

func (m *memUsers) CountUsers(context.Context) (int, error) { return len(m.users), nil }
func (m *memUsers) CreateUser(_ context.Context, u store.User) error {
	m.users = append(m.users, u)
	return nil
}

func TestCreateFirstAdmin(t *testing.T) {
	ctx := context.Background()
	m := &memUsers{}
	for _, bad := range [][2]string{{"", "long-enough-pw"}, {"Admin", "long-enough-pw"}, {"a b", "long-enough-pw"}, {"admin", "short"}} {
		if err := CreateFirstAdmin(ctx, m, bad[0], bad[1], time.Now()); err == nil {
			t.Errorf("CreateFirstAdmin(%q, %q) succeeded", bad[0], bad[1])
		}
	}
	if len(m.users) != 0 {
		t.Fatal("refused calls created users")
	}
	if err := CreateFirstAdmin(ctx, m, "admin", "long-enough-pw", time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(m.users) != 1 || m.users[0].State != "active" || CheckPassword(m.users[0].PasswordHash, "long-enough-pw") != nil {
		t.Fatalf("users %+v", m.users)
	}
	if err := CreateFirstAdmin(ctx, m, "second", "long-enough-pw", time.Now()); err == nil {
		t.Fatal("a second first admin was created")
	}
}
