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
	// "all": every session of the user, on every browser and CLI.
	if err := rq.api.Logout(rq.ctx(), rq.r.PostForm.Get("all") == "on"); err != nil && !client.IsStatus(err, http.StatusUnauthorized) {
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
	Who     *apiv1.WhoAmI
	Version *apiv1.Version
	Error   string
}

func (c *Console) meData(rq *request) (meData, error) {
	var d meData
	var err error
	if d.Who, err = rq.api.WhoAmI(rq.ctx()); err != nil {
		return d, err
	}
	d.Version, err = rq.api.Version(rq.ctx())
	return d, err
}

func (c *Console) mePage(rq *request) error {
	d, err := c.meData(rq)
	if err != nil {
		return err
	}
	return c.page(rq, "me", "Me", d)
}

// passwordPost changes the user's own password. The API ends every
// session of the user and answers a new one, which replaces the cookie; a
// refusal (wrong old password, a new one against the policy) is shown on
// the page with the API's status.
func (c *Console) passwordPost(rq *request) error {
	f := rq.r.PostForm
	if f.Get("new") != f.Get("confirm") {
		return c.meFailed(rq, http.StatusBadRequest, "The new password and its confirmation differ; nothing changed.")
	}
	resp, err := rq.api.ChangePassword(rq.ctx(), f.Get("old"), f.Get("new"))
	var ce *client.Error
	if asClientError(err, &ce) && ce.Status != http.StatusUnauthorized {
		return c.meFailed(rq, ce.Status, ce.Message)
	}
	if err != nil {
		return err
	}
	http.SetCookie(rq.w, &http.Cookie{Name: sessionCookie, Value: resp.Token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, Expires: resp.ExpiresAt})
	return redirect(rq, "/me", "Password changed; your other sessions have ended.")
}

func (c *Console) meFailed(rq *request, status int, msg string) error {
	d, err := c.meData(rq)
	if err != nil {
		return err
	}
	d.Error = msg
	if _, err := c.whoami(rq); err != nil {
		return err
	}
	c.render(rq.w, rq.r, rq, status, "me", pageData{Title: "Me", Data: d})
	return nil
}
