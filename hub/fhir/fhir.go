// Package fhir is the FHIR R4 read API of SPEC §10, under /fhir/R4:
// the CapabilityStatement, reads of every resource the domain maps to
// (resources.go), and the ServiceRequest searches, as paged searchset
// Bundles. Every read goes through rooms.Service, so the access rules and
// the audit are those of the REST API; errors are OperationOutcomes.
//
// A person's session cookie authenticates, and so does an integrator's
// bearer token (SMART Backend Services), which reads what its
// organisation's receiving team may read, within its scopes.
package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// ContentType is the media type of every answer.
const ContentType = "application/fhir+json; charset=utf-8"

const (
	// defaultCount is a search page's size when _count is not given.
	defaultCount = 50
	// maxIncluded bounds the Communications one _revinclude adds, and
	// maxEventPages the events read to find them; a bundle that stops
	// short says so in an OperationOutcome entry.
	maxIncluded = 500
	// eventsPage is how many events one read of a room takes while
	// collecting its messages, in at most maxEventPages reads.
	eventsPage    = 500
	maxEventPages = 10
)

// Sessions resolves a request's session cookie to its user (auth.Auth).
type Sessions interface {
	Session(w http.ResponseWriter, r *http.Request) (rooms.Caller, error)
}

// Bearer resolves a request's bearer token to its integrator.
type Bearer interface {
	Bearer(r *http.Request) (rooms.Caller, error)
}

// Config configures the API.
type Config struct {
	Service  *rooms.Service
	Sessions Sessions
	// Bearer authenticates integrators; requests with an Authorization
	// header are refused when nil.
	Bearer Bearer
	// Base is the public URL of /fhir/R4, for fullUrls and links.
	Base string
	// TokenURL is the public URL of the token endpoint, for the
	// CapabilityStatement.
	TokenURL string
	// Started dates the CapabilityStatement.
	Started time.Time
}

// API serves /fhir/R4.
type API struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the API over cfg.
func New(cfg Config) *API {
	a := &API{cfg: cfg, mux: http.NewServeMux()}
	const p = "/fhir/R4/"
	a.mux.HandleFunc("GET "+p+"metadata", a.metadata)
	a.mux.HandleFunc("GET "+p+".well-known/smart-configuration", a.smartConfiguration)
	a.mux.HandleFunc("GET "+p+"{type}/{id}", a.authenticated(a.read))
	a.mux.HandleFunc("GET "+p+"{type}", a.authenticated(a.search))
	a.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeOutcome(w, http.StatusMethodNotAllowed, fhir.IssueTypeNotSupported, "this server only reads: use GET", "")
			return
		}
		writeOutcome(w, http.StatusNotFound, fhir.IssueTypeNotSupported, "no such FHIR endpoint", "")
	})
	return a
}

// Routes registers the API on mux.
func (a *API) Routes(mux *http.ServeMux) { mux.Handle("/fhir/R4/", a) }

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f := r.URL.Query().Get("_format"); f != "" && !jsonFormat(f) {
		writeOutcome(w, http.StatusNotAcceptable, fhir.IssueTypeNotSupported, "only JSON is served: _format must be json or application/fhir+json", "_format")
		return
	}
	a.mux.ServeHTTP(w, r)
}

func jsonFormat(f string) bool {
	switch strings.TrimSpace(strings.SplitN(f, ";", 2)[0]) {
	case "json", "application/json", "application/fhir+json":
		return true
	}
	return false
}

// authenticated resolves the caller, by bearer token when the request has
// an Authorization header and by session cookie otherwise.
func (a *API) authenticated(h func(w http.ResponseWriter, r *http.Request, c rooms.Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var (
			c   rooms.Caller
			err error
		)
		switch {
		case r.Header.Get("Authorization") == "":
			c, err = a.cfg.Sessions.Session(w, r)
		case a.cfg.Bearer != nil:
			c, err = a.cfg.Bearer.Bearer(r)
		default:
			err = &rooms.Error{Code: rooms.CodeUnauthenticated, Message: "bearer tokens are not accepted here"}
		}
		if err != nil {
			if rooms.CodeOf(err) == rooms.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Bearer realm="Patient Pass FHIR"`)
			}
			fail(w, r, err)
			return
		}
		h(w, r, c)
	}
}

// read serves GET /fhir/R4/{type}/{id}.
func (a *API) read(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	read, ok := a.readers()[typ]
	if !ok {
		writeOutcome(w, http.StatusNotFound, fhir.IssueTypeNotSupported, "this server does not serve "+httpjson.Printable(typ, 40)+" resources", "")
		return
	}
	if err := a.allowed(r, c, typ); err != nil {
		fail(w, r, err)
		return
	}
	v, err := read(r, c, id)
	if err != nil {
		fail(w, r, err)
		return
	}
	write(w, http.StatusOK, v)
}

// readers are the reads by type: each returns the resource (a model value
// or its JSON).
func (a *API) readers() map[string]func(r *http.Request, c rooms.Caller, id string) (any, error) {
	svc := a.cfg.Service
	return map[string]func(*http.Request, rooms.Caller, string) (any, error){
		"ServiceRequest": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			ref, err := svc.Referral(r.Context(), c, id)
			if err != nil {
				return nil, err
			}
			pw, err := svc.PathwayOf(r.Context(), ref)
			return ServiceRequest(ref, pw), err
		},
		"Task": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			ref, err := svc.Referral(r.Context(), c, id)
			return Task(ref), err
		},
		"Patient": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			ref, err := svc.Referral(r.Context(), c, id)
			return Patient(ref), err
		},
		"CarePlan": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			ref, err := svc.Referral(r.Context(), c, id)
			if err != nil {
				return nil, err
			}
			pw, err := svc.PathwayOf(r.Context(), ref)
			return CarePlan(ref, pw), err
		},
		"Communication": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			referralID, seq, ok := splitCommunicationID(id)
			if !ok {
				return nil, rooms.NotFound("communication")
			}
			ref, e, err := svc.Message(r.Context(), c, referralID, seq)
			if err != nil {
				return nil, err
			}
			return Communication(ref, e)
		},
		"Practitioner": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			u, err := svc.Practitioner(r.Context(), c, id)
			return Practitioner(u), err
		},
		"Organization": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			o, err := svc.OrganisationByODS(r.Context(), c, id)
			return Organization(o), err
		},
		"AuditEvent": func(r *http.Request, c rooms.Caller, id string) (any, error) {
			n, err := strconv.ParseInt(id, 10, 64)
			if err != nil || n <= 0 {
				return nil, rooms.NotFound("audit event")
			}
			e, err := svc.AuditEntryByID(r.Context(), c, n)
			return AuditEvent(e), err
		},
	}
}

// splitCommunicationID splits "<referral>-<seq>".
func splitCommunicationID(id string) (string, int64, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil || seq <= 0 || rooms.CheckID("id", id[:i]) != nil {
		return "", 0, false
	}
	return id[:i], seq, true
}

// allowed refuses an integrator whose token's scopes do not cover the
// type, and audits the refusal.
func (a *API) allowed(r *http.Request, c rooms.Caller, typ string) error {
	if c.Allows(typ) {
		return nil
	}
	_ = a.cfg.Service.AuditCaller(r.Context(), c, rooms.ActionRead, "fhir.read", nil, rooms.OutcomeDenied, "scope "+typ)
	return rooms.Forbidden("this token's scopes do not include reading %s", typ)
}

// write answers with a resource.
func write(w http.ResponseWriter, status int, v any) {
	b, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			writeOutcome(w, http.StatusInternalServerError, fhir.IssueTypeException, "the resource could not be written", "")
			return
		}
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fail answers with the OperationOutcome of err: a *rooms.Error as it
// says, anything else as an internal error, logged without its details
// reaching the client.
func fail(w http.ResponseWriter, r *http.Request, err error) {
	var de *rooms.Error
	if !errors.As(err, &de) {
		if errors.Is(err, rooms.ErrNotFound) {
			de = rooms.NotFound("resource")
		} else {
			zerolog.Ctx(r.Context()).Error().Err(err).Str("route", r.Pattern).Msg("FHIR request failed")
			de = &rooms.Error{Code: rooms.CodeInternal, Message: "something went wrong on our side; it has been logged"}
		}
	}
	writeOutcome(w, httpjson.StatusOf(de.Code), issueTypes[de.Code], de.Message, de.Field)
}

var issueTypes = map[rooms.Code]fhir.IssueType{
	rooms.CodeInvalid:         fhir.IssueTypeInvalid,
	rooms.CodeUnauthenticated: fhir.IssueTypeLogin,
	rooms.CodeForbidden:       fhir.IssueTypeForbidden,
	rooms.CodeNotFound:        fhir.IssueTypeNotFound,
	rooms.CodeConflict:        fhir.IssueTypeConflict,
	rooms.CodeRateLimited:     fhir.IssueTypeThrottled,
	rooms.CodeInternal:        fhir.IssueTypeException,
	rooms.CodeUnavailable:     fhir.IssueTypeTransient,
}

// Outcome is an OperationOutcome of one error issue; field, when set, is
// the request parameter it concerns.
func Outcome(code fhir.IssueType, message, field string) fhir.OperationOutcome {
	issue := fhir.OperationOutcomeIssue{Severity: fhir.IssueSeverityError, Code: code, Diagnostics: str(message)}
	if field != "" {
		issue.Expression = []string{field}
	}
	return fhir.OperationOutcome{Issue: []fhir.OperationOutcomeIssue{issue}}
}

func writeOutcome(w http.ResponseWriter, status int, code fhir.IssueType, message, field string) {
	write(w, status, Outcome(code, message, field))
}

// metadata serves the CapabilityStatement: what this server reads and
// searches, and how integrators authenticate.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	write(w, http.StatusOK, a.capabilities())
}

func (a *API) capabilities() fhir.CapabilityStatement {
	read := []fhir.CapabilityStatementRestResourceInteraction{{Code: fhir.TypeRestfulInteractionRead}}
	var resources []fhir.CapabilityStatementRestResource
	for _, t := range []fhir.ResourceType{fhir.ResourceTypeTask, fhir.ResourceTypePatient, fhir.ResourceTypePractitioner,
		fhir.ResourceTypeOrganization, fhir.ResourceTypeCommunication, fhir.ResourceTypeCarePlan, fhir.ResourceTypeAuditEvent} {
		resources = append(resources, fhir.CapabilityStatementRestResource{Type: t, Interaction: read})
	}
	sr := fhir.CapabilityStatementRestResource{
		Type: fhir.ResourceTypeServiceRequest,
		Interaction: []fhir.CapabilityStatementRestResourceInteraction{
			{Code: fhir.TypeRestfulInteractionRead}, {Code: fhir.TypeRestfulInteractionSearchType}},
		SearchInclude:    []string{"ServiceRequest:subject"},
		SearchRevInclude: []string{"Task:focus", "Communication:based-on"},
		SearchParam: []fhir.CapabilityStatementRestResourceSearchParam{
			{Name: "_id", Type: fhir.SearchParamTypeToken},
			{Name: "_lastUpdated", Type: fhir.SearchParamTypeDate,
				Documentation: str("gt only; oldest change first; a change shows once it has settled, " + rooms.ChangeSettle.String() + " after it")},
		},
	}
	security := &fhir.CapabilityStatementRestSecurity{
		Service: []fhir.CodeableConcept{{Coding: []fhir.Coding{{
			System: str("http://terminology.hl7.org/CodeSystem/restful-security-service"), Code: str("SMART-on-FHIR")}}}},
		Description: str("A session cookie, or a bearer token from " + a.cfg.TokenURL +
			" (SMART Backend Services: client_credentials with a signed JWT assertion, ES384 or RS384)"),
	}
	return fhir.CapabilityStatement{
		Status:         fhir.PublicationStatusActive,
		Date:           a.cfg.Started.UTC().Format(time.RFC3339),
		Publisher:      str("Patient Pass"),
		Kind:           fhir.CapabilityStatementKindInstance,
		Software:       &fhir.CapabilityStatementSoftware{Name: "Patient Pass"},
		Implementation: &fhir.CapabilityStatementImplementation{Description: "Patient Pass referrals", Url: str(a.cfg.Base)},
		FhirVersion:    fhir.FHIRVersion4_0_1,
		Format:         []string{"json"},
		Rest: []fhir.CapabilityStatementRest{{
			Mode: fhir.RestfulCapabilityModeServer, Security: security,
			Resource: append([]fhir.CapabilityStatementRestResource{sr}, resources...),
		}},
	}
}

// smartConfiguration serves the SMART discovery document: where and how
// a backend service gets its token.
func (a *API) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_endpoint":                                   a.cfg.TokenURL,
		"grant_types_supported":                            []string{"client_credentials"},
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"ES384", "RS384"},
		"scopes_supported":                                 []string{"system/*.read", "system/AuditEvent.read"},
		"capabilities":                                     []string{"client-confidential-asymmetric"},
	})
}

// link is the URL of a search of type with the given query.
func (a *API) link(typ string, q url.Values) string {
	return a.cfg.Base + "/" + typ + "?" + q.Encode()
}

// fullURL is an entry's fullUrl.
func (a *API) fullURL(typ, id string) *string {
	return str(fmt.Sprintf("%s/%s/%s", a.cfg.Base, typ, id))
}
