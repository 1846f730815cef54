package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"patientpass/hub/httpjson"
	"patientpass/hub/totp"
	"patientpass/rooms"
)

// totpIssuer names Patient Pass in authenticator apps.
const totpIssuer = "Patient Pass"

// recoveryCodeCount is how many recovery codes a user gets at enrolment.
const recoveryCodeCount = 10

// recoveryEncoding is a lower-case base32 without the characters most often
// confused when copied from paper (0 and o, 1 and l).
var recoveryEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newRecoveryCode returns 80 random bits as four groups of four characters.
// With that much entropy a plain SHA-256 is a safe way to store it; a slow
// hash is needed only for secrets people choose.
func newRecoveryCode() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random recovery code: %w", err)
	}
	s := recoveryEncoding.EncodeToString(b) // 16 characters
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16], nil
}

// recoveryCodeHash is the stored form of a recovery code, ignoring case,
// spaces and dashes as people type them.
func recoveryCodeHash(code string) string {
	c := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	sum := sha256.Sum256([]byte(c))
	return hex.EncodeToString(sum[:])
}

// isTOTPCode reports whether s looks like an authenticator code (six digits,
// spaces allowed) rather than a recovery code.
func isTOTPCode(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) != totp.Digits {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// wrongCode is the answer to a second factor that does not work.
var wrongCode = &rooms.Error{Code: rooms.CodeUnauthenticated, Field: "totp",
	Message: "that code did not work; enter the current code from your authenticator app (each code works once), or one of your recovery codes"}

// checkSecondFactor accepts a current authenticator code not used before, or
// an unused recovery code, and says which it was. The attempt is reserved
// against the account's codes and the client's address before the code is
// checked, as a password guess is, so codes cannot be guessed in parallel;
// a refusal for that is errThrottled, any other a *rooms.Error.
func (a *Auth) checkSecondFactor(ctx context.Context, u rooms.User, code, addr string) (string, error) {
	res, err := a.reserve(ctx, []rooms.Limit{{Key: totpKey(u.ID), Max: maxTOTPFailures}, {Key: addrKey(addr), Max: maxClientAddrFailures}}, throttleWindow)
	if err != nil {
		return "", err
	}
	if !res.Allowed {
		return "", throttled{wait: res.RetryAfter}
	}
	factor, err := a.verifySecondFactor(ctx, u, code)
	if err == nil {
		_ = a.store.ForgiveAttempt(context.WithoutCancel(ctx), res.ID)
		if err := a.store.ClearLoginFailures(ctx, totpKey(u.ID)); err != nil {
			return "", fmt.Errorf("clear second-factor failures: %w", err)
		}
	}
	return factor, err
}

func (a *Auth) verifySecondFactor(ctx context.Context, u rooms.User, code string) (string, error) {
	if isTOTPCode(code) {
		step, ok := totp.Verify(u.TOTPSecret, code, a.clock.Now())
		if !ok {
			return "", wrongCode
		}
		fresh, err := a.store.ClaimTOTPStep(ctx, u.ID, step)
		if err != nil {
			return "", fmt.Errorf("claim TOTP step for user %s: %w", u.ID, err)
		}
		if !fresh {
			return "", wrongCode
		}
		return "totp", nil
	}
	if len(code) > 64 {
		return "", wrongCode
	}
	used, err := a.store.UseRecoveryCode(ctx, u.ID, recoveryCodeHash(code), a.clock.Now())
	if err != nil {
		return "", fmt.Errorf("use recovery code of user %s: %w", u.ID, err)
	}
	if !used {
		return "", wrongCode
	}
	return "recovery_code", nil
}

// totpEnrol offers a new TOTP secret. It is kept as pending until the user
// proves their app has it by confirming a code, so a half-finished set-up
// never locks anyone out.
func (a *Auth) totpEnrol(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	if c.User.TOTPSecret != "" {
		// Replacing a working factor needs more than a session: someone who
		// stole a session must not be able to take over the account.
		httpjson.Fail(w, r, rooms.Conflict("two-factor authentication is already set up; ask an admin of your organisation to reset it if you have lost your device"))
		return
	}
	secret, err := totp.Generate()
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if err := a.svc.UpdateCredentials(r.Context(), c, c.User.ID, "user.totp_enrol", func(cr *rooms.Credentials) { cr.TOTPPendingSecret = secret }); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{
		"secret":      secret,
		"otpauth_uri": totp.URI(totpIssuer, c.User.Email, secret),
	})
}

type totpConfirmRequest struct {
	Code string `json:"code"`
}

// totpConfirm turns the pending secret on when code matches it, and returns
// recovery codes, shown this once.
func (a *Auth) totpConfirm(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	var req totpConfirmRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	ctx := r.Context()
	if c.User.TOTPSecret != "" {
		httpjson.Fail(w, r, rooms.Conflict("two-factor authentication is already set up"))
		return
	}
	if c.User.TOTPPendingSecret == "" {
		httpjson.Fail(w, r, rooms.Conflict("start setting up two-factor authentication first"))
		return
	}
	res, err := a.reserve(ctx, []rooms.Limit{{Key: totpKey(c.User.ID), Max: maxTOTPFailures}}, throttleWindow)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if !res.Allowed {
		a.m.ThrottledTOTP.Inc()
		_ = a.svc.AuditCaller(ctx, c, rooms.ActionUpdate, "user.totp_confirm", nil, rooms.OutcomeDenied, reasonThrottled)
		a.retryLater(w, rooms.CodeRateLimited, res.RetryAfter, "too many wrong codes; please wait %s and try again")
		return
	}
	step, ok := totp.Verify(c.User.TOTPPendingSecret, req.Code, a.clock.Now())
	if ok {
		_ = a.store.ForgiveAttempt(context.WithoutCancel(ctx), res.ID)
	}
	if !ok {
		_ = a.svc.AuditCaller(ctx, c, rooms.ActionUpdate, "user.totp_confirm", nil, rooms.OutcomeInvalid, "code")
		httpjson.Fail(w, r, rooms.Invalid("code", "that code did not match; enter the 6-digit code your authenticator app shows now"))
		return
	}
	// The code used to confirm cannot then be used to log in.
	if _, err := a.store.ClaimTOTPStep(ctx, c.User.ID, step); err != nil {
		httpjson.Fail(w, r, fmt.Errorf("claim TOTP step for user %s: %w", c.User.ID, err))
		return
	}
	codes := make([]string, recoveryCodeCount)
	hashes := make([]string, recoveryCodeCount)
	for i := range codes {
		code, err := newRecoveryCode()
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		codes[i], hashes[i] = code, recoveryCodeHash(code)
	}
	// Recovery codes first: if turning TOTP on then fails, the user has
	// codes that lead nowhere, which is harmless.
	if err := a.store.SetRecoveryCodes(ctx, c.User.ID, hashes); err != nil {
		httpjson.Fail(w, r, fmt.Errorf("store recovery codes of user %s: %w", c.User.ID, err))
		return
	}
	pending := c.User.TOTPPendingSecret
	err = a.svc.UpdateCredentials(ctx, c, c.User.ID, "user.totp_confirm", func(cr *rooms.Credentials) {
		cr.TOTPSecret = pending
		cr.TOTPPendingSecret = ""
	})
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}
