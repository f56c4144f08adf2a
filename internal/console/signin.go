package console

import (
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/relay/control"
)

// signinData is the sign-in page's.
type signinData struct {
	Return string
	// SSO is the single sign-on link, empty when single sign-on is not configured.
	SSO string
	// Token is the value the token form echoes in [CSRFField] (login CSRF).
	Token string
	Error string
}

// signinPage shows the ways to sign in: single sign-on (when configured) and an API token.
func (c *Console) signinPage(g *gin.Context) {
	c.renderSignin(g, http.StatusOK, "")
}

func (c *Console) renderSignin(g *gin.Context, status int, msg string) {
	ret := localPath(g.Query("return"))
	if v := g.PostForm("return"); v != "" {
		ret = localPath(v)
	}
	tok, err := access.RandomID(20)
	if err != nil {
		c.fail(g, err)
		return
	}
	http.SetCookie(g.Writer, c.api.Cookie(g, signinCookie, tok, Root+"signin", 600))
	d := &signinData{Return: ret, Token: tok, Error: msg}
	if c.api.SSOEnabled() {
		d.SSO = "/auth/login?return=" + url.QueryEscape(ret)
	}
	g.Header("Cache-Control", "no-store")
	c.render(g, status, "signin", &page{Title: "Sign in", Data: d})
}

// signin exchanges the token typed into the form for a session, and goes back to where
// the person was going.
func (c *Console) signin(g *gin.Context) {
	want, err := g.Cookie(signinCookie)
	if err != nil || want == "" || !access.HashEqual(g.PostForm(CSRFField), want) {
		c.renderSignin(g, http.StatusForbidden, "The sign-in form expired or did not come from this page. Try again.")
		return
	}
	if _, err := c.api.SignInWithToken(g, g.PostForm("token")); err != nil {
		status, msg := control.Refusal(err)
		if status >= 500 {
			c.fail(g, err)
			return
		}
		c.renderSignin(g, status, msg)
		return
	}
	http.SetCookie(g.Writer, c.api.Cookie(g, signinCookie, "", Root+"signin", -1))
	g.Redirect(http.StatusSeeOther, localPath(g.PostForm("return")))
}

// signout ends the session (the form carries its CSRF token, checked by signedIn).
func (c *Console) signout(g *gin.Context) {
	if err := c.api.SignOut(g, sessionOf(g)); err != nil {
		c.fail(g, err)
		return
	}
	g.Redirect(http.StatusSeeOther, Root+"signin")
}
