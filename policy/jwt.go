package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/svidgate/svidgate/internal/tomlpos"
)

// JWTRequirement is a rule's [rule.jwt] table: the JWT-SVID a request must
// carry, besides matching the rule, to be allowed by it. It is immutable.
type JWTRequirement struct {
	// Audience must be one of the token's audiences. Never empty.
	Audience string
	// SubjectPeer requires the token's subject to be the mTLS caller.
	SubjectPeer bool
	// Subjects, when SubjectPeer is false, are the SPIFFE ID patterns the
	// token's subject must match (a gateway acting for a workload).
	subjects     []glob
	subjectsText []string
	// Claims are further conditions on the token's claims, all required.
	Claims []ClaimCondition
	// Forward passes the token on to the upstream; by default it is
	// removed.
	Forward bool
}

// ClaimCondition is one condition on a claim.
type ClaimCondition struct {
	Claim string
	Op    ClaimOp
	// Values holds one value for ClaimEquals and ClaimContains, the
	// accepted values for ClaimOneOf.
	Values []string
}

// ClaimOp is how a claim is compared.
type ClaimOp uint8

// Claim comparisons. A claim that is a list (such as "scope" in many
// issuers) satisfies ClaimContains when one element equals the value; a
// string claim satisfies it when one of its space-separated words does.
const (
	ClaimEquals ClaimOp = iota + 1
	ClaimOneOf
	ClaimContains
)

var claimOps = []string{"equals", "one_of", "contains"}

func (op ClaimOp) String() string { return claimOps[op-1] }

// JWT rejection reasons returned by Check.
const (
	ReasonJWTAudience = "jwt audience mismatch"
	ReasonJWTSubject  = "jwt subject not allowed"
	ReasonJWTClaim    = "jwt claim condition failed"
)

// Check tells whether a validated token with subject sub, audiences aud and
// claims satisfies the requirement for a request from peer (the mTLS
// caller; "" at the edge, where the caller is the subject). It returns ""
// or one of the ReasonJWT constants.
func (j *JWTRequirement) Check(peer, sub string, aud []string, claims map[string]any) string {
	if !slices.Contains(aud, j.Audience) {
		return ReasonJWTAudience
	}
	if !j.subjectOK(peer, sub) {
		return ReasonJWTSubject
	}
	for i := range j.Claims {
		if !j.Claims[i].holds(claims) {
			return ReasonJWTClaim
		}
	}
	return ""
}

func (j *JWTRequirement) subjectOK(peer, sub string) bool {
	if j.SubjectPeer {
		return peer == "" || sub == peer
	}
	for k := range j.subjects {
		if j.subjects[k].match(sub) {
			return true
		}
	}
	return false
}

// ClaimResult is how one condition evaluated, for Explain.
type ClaimResult struct {
	Condition string `json:"condition"`
	OK        bool   `json:"ok"`
	Detail    string `json:"detail"`
}

// Explain evaluates every part of the requirement and says why each passed
// or failed.
func (j *JWTRequirement) Explain(peer, sub string, aud []string, claims map[string]any) []ClaimResult {
	out := []ClaimResult{{
		Condition: fmt.Sprintf("audience %q", j.Audience),
		OK:        slices.Contains(aud, j.Audience),
		Detail:    fmt.Sprintf("token audiences %q", aud),
	}}
	subj := "subject = peer"
	if !j.SubjectPeer {
		subj = "subject in " + strings.Join(j.subjectsText, ", ")
	}
	out = append(out, ClaimResult{Condition: subj, OK: j.subjectOK(peer, sub), Detail: fmt.Sprintf("token subject %q, peer %q", sub, peer)})
	for i := range j.Claims {
		out = append(out, ClaimResult{Condition: j.Claims[i].String(), OK: j.Claims[i].holds(claims), Detail: fmt.Sprintf("claim is %v", claims[j.Claims[i].Claim])})
	}
	return out
}

// String renders the condition as written in the policy.
func (c *ClaimCondition) String() string {
	if c.Op == ClaimOneOf {
		return fmt.Sprintf("claims.%s one_of %q", c.Claim, c.Values)
	}
	return fmt.Sprintf("claims.%s %s %q", c.Claim, c.Op, c.Values[0])
}

// holds evaluates the condition without allocating.
func (c *ClaimCondition) holds(claims map[string]any) bool {
	v, ok := claims[c.Claim]
	if !ok {
		return false
	}
	switch c.Op {
	case ClaimEquals:
		s, ok := v.(string)
		return ok && s == c.Values[0]
	case ClaimOneOf:
		s, ok := v.(string)
		return ok && slices.Contains(c.Values, s)
	case ClaimContains:
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok && s == c.Values[0] {
					return true
				}
			}
		case []string:
			return slices.Contains(v, c.Values[0])
		case string:
			for w := range strings.FieldsSeq(v) {
				if w == c.Values[0] {
					return true
				}
			}
		}
	}
	return false
}

var jwtKeys = []string{"audience", "subject", "claims", "forward"}

func checkJWT(c *checker, r *ruleCtx, path string, v any) {
	t, ok := v.(map[string]any)
	if !ok {
		c.valErr(path, "%s: jwt must be a table ([rule.jwt]), got %s", r.name, describe(v))
		return
	}
	j := &JWTRequirement{SubjectPeer: true}
	for _, k := range sortedKeys(t) {
		if !slices.Contains(jwtKeys, k) {
			c.keyErr(tomlpos.Join(path, k), "%s: unknown key %q in [rule.jwt]%s; allowed keys: %s", r.name, k, suggest(k, jwtKeys), strings.Join(jwtKeys, ", "))
		}
	}
	switch a, ok := t["audience"]; {
	case !ok:
		c.keyErr(path, "%s: [rule.jwt] needs an audience: the value the token's aud must contain (never \"any audience\")", r.name)
	default:
		s, ok := c.str(r, tomlpos.Join(path, "audience"), a)
		if ok && s == "" {
			c.valErr(tomlpos.Join(path, "audience"), "%s: jwt audience must not be empty: an empty audience would accept tokens minted for any service", r.name)
		}
		j.Audience = s
	}
	if s, ok := t["subject"]; ok {
		sp := tomlpos.Join(path, "subject")
		switch s := s.(type) {
		case string:
			if s != "peer" {
				c.valErr(sp, "%s: jwt subject %q: want \"peer\" (the token's sub must be the mTLS caller) or a list of SPIFFE ID patterns", r.name, s)
			}
		default:
			j.SubjectPeer = false
			for _, it := range c.list(r, sp, s, `subject = [] would accept no token; use "peer" or list the allowed subjects`) {
				g, err := compileCaller(it.s)
				if err != nil {
					c.valErr(tomlpos.Index(sp, it.i), "%s: jwt subject[%d] %q: %v", r.name, it.i, it.s, err)
					continue
				}
				j.subjects = append(j.subjects, g)
				j.subjectsText = append(j.subjectsText, it.s)
			}
		}
	}
	if f, ok := t["forward"]; ok {
		b, isBool := f.(bool)
		if !isBool {
			c.valErr(tomlpos.Join(path, "forward"), "%s: jwt forward must be true or false, got %s", r.name, describe(f))
		}
		j.Forward = b
	}
	if cl, ok := t["claims"]; ok {
		j.Claims = checkClaims(c, r, tomlpos.Join(path, "claims"), cl)
	}
	r.jwt = j
}

func checkClaims(c *checker, r *ruleCtx, path string, v any) []ClaimCondition {
	t, ok := v.(map[string]any)
	if !ok {
		c.valErr(path, "%s: jwt claims must be a table of claim = { equals = ... | one_of = [...] | contains = ... }, got %s", r.name, describe(v))
		return nil
	}
	var out []ClaimCondition
	for _, name := range sortedKeys(t) {
		cp := tomlpos.Join(path, name)
		cond, ok := t[name].(map[string]any)
		if !ok || len(cond) != 1 {
			c.valErr(cp, "%s: claim %q: want exactly one of { equals = \"v\" }, { one_of = [\"a\", \"b\"] }, { contains = \"v\" }", r.name, name)
			continue
		}
		for op, val := range cond {
			idx := slices.Index(claimOps, op)
			if idx < 0 {
				c.keyErr(tomlpos.Join(cp, op), "%s: claim %q: unknown comparison %q; want equals, one_of or contains", r.name, name, op)
				continue
			}
			cc := ClaimCondition{Claim: name, Op: ClaimOp(idx + 1)}
			vp := tomlpos.Join(cp, op)
			if cc.Op == ClaimOneOf {
				for _, it := range c.list(r, vp, val, "one_of = [] would accept no token") {
					cc.Values = append(cc.Values, it.s)
				}
			} else if s, ok := c.str(r, vp, val); ok {
				cc.Values = []string{s}
			}
			if len(cc.Values) > 0 {
				out = append(out, cc)
			}
		}
	}
	return out
}
