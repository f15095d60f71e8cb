package console

import (
	"net/http"
	"strings"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

type loginData struct {
	Banner, Next, Msg, User, Error string
}

func (c *Console) loginPage(rq *request) error {
	ck, err := rq.r.Cookie(loginCookie)
	if err != nil || ck.Value == "" {
		secret := randomToken()
		http.SetCookie(rq.w, &http.Cookie{Name: loginCookie, Value: secret, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
		rq.csrf = c.csrfToken("login", secret)
	}
	b, err := rq.api.Banner(rq.ctx())
	if err != nil {
		return err
	}
	c.render(rq.w, rq.r, rq, http.StatusOK, "login", pageData{Title: "Log in", Data: loginData{Banner: b.Banner, Next: safeNext(rq.r.FormValue("next")), Msg: rq.r.FormValue("msg")}})
	return nil
}

func (c *Console) loginPost(rq *request) error {
	f := rq.r.PostForm
	resp, err := rq.api.Login(rq.ctx(), f.Get("user"), f.Get("password"))
	if err != nil {
		var ce *client.Error
		if !asClientError(err, &ce) {
			return err
		}
		b, berr := rq.api.Banner(rq.ctx())
		if berr != nil {
			return berr
		}
		c.render(rq.w, rq.r, rq, ce.Status, "login", pageData{Title: "Log in", Data: loginData{Banner: b.Banner, Next: safeNext(f.Get("next")), User: f.Get("user"), Error: ce.Message}})
		return nil
	}
	http.SetCookie(rq.w, &http.Cookie{Name: sessionCookie, Value: resp.Token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, Expires: resp.ExpiresAt})
	clearCookie(rq.w, loginCookie)
	next := safeNext(f.Get("next"))
	if next == "" {
		next = "/"
	}
	http.Redirect(rq.w, rq.r, next, http.StatusSeeOther)
	return nil
}

func (c *Console) logoutPost(rq *request) error {
	// End the session on the controller, not only in this browser: a copy
	// of the cookie dies with it. An already ended session is logged out.
	if err := rq.api.Logout(rq.ctx(), false); err != nil && !client.IsStatus(err, http.StatusUnauthorized) {
		return err
	}
	clearCookie(rq.w, sessionCookie)
	http.Redirect(rq.w, rq.r, "/login?msg="+strings.ReplaceAll("Logged out.", " ", "+"), http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login target only if it is a path on this
// controller (no scheme, no host, no protocol-relative //).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	return next
}

type meData struct {
	Version *apiv1.Version
}

func (c *Console) mePage(rq *request) error {
	v, err := rq.api.Version(rq.ctx())
	if err != nil {
		return err
	}
	return c.page(rq, "me", "Me", meData{Version: v})
}
