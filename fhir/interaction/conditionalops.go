package interaction

import (
	"context"
	"net/url"

	"healthhub/auth"
)

// runOne runs a single op in its own transaction.
func (s *Service) runOne(ctx context.Context, p auth.Principal, o *op, multipleDeletes bool) (Result, error) {
	res, err := s.run(ctx, p, []*op{o}, multipleDeletes)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// ConditionalCreate creates a resource unless the If-None-Exist criteria
// (a query string such as identifier=system|value) match: with one match
// it returns that resource (Found) and writes nothing; with several it
// fails with PreconditionFailed. The match and the create happen in one
// write transaction, so two racing identical requests create one resource.
func (s *Service) ConditionalCreate(ctx context.Context, p auth.Principal, typ string, body []byte, ifNoneExist string) (Result, error) {
	q, err := s.criteriaString(typ, ifNoneExist, "If-None-Exist")
	if err != nil {
		return Result{}, err
	}
	obj, err := s.parseCreateBody(typ, body)
	if err != nil {
		return Result{}, err
	}
	o := &op{index: -1, method: methodPost, url: typ, typ: typ, criteria: q, obj: obj, newID: s.newID(), refs: references(body)}
	return s.runOne(ctx, p, o, false)
}

// ConditionalUpdate updates the one resource the criteria select, or
// creates one when none does, and fails with PreconditionFailed when
// several do. An id in the body must be the selected resource's; when
// nothing matches, the new resource takes the body's id (update as create,
// as R4 allows), unless a resource with that id exists (Conflict: it did
// not match), or a server id when the body has none.
func (s *Service) ConditionalUpdate(ctx context.Context, p auth.Principal, typ string, criteria url.Values, body []byte, ifMatch Precondition) (Result, error) {
	q, err := s.criteria(typ, criteria, "the conditional update")
	if err != nil {
		return Result{}, err
	}
	obj, err := s.parseBody(typ, body)
	if err != nil {
		return Result{}, err
	}
	bodyID, _ := obj.String("id")
	if bodyID != "" {
		if err := checkID(typ, bodyID); err != nil {
			return Result{}, err
		}
	}
	o := &op{index: -1, method: methodPut, url: typ, typ: typ, criteria: q, ifMatch: ifMatch, obj: obj, bodyID: bodyID, newID: s.newID(), refs: references(body)}
	return s.runOne(ctx, p, o, false)
}

// ConditionalDelete deletes what the criteria select: nothing when none
// match (Result.Deleted empty, not an error); one; several only when
// multiple is set (the server's --conditional-delete), else it fails with
// PreconditionFailed.
func (s *Service) ConditionalDelete(ctx context.Context, p auth.Principal, typ string, criteria url.Values, ifMatch Precondition, multiple bool) (Result, error) {
	q, err := s.criteria(typ, criteria, "the conditional delete")
	if err != nil {
		return Result{}, err
	}
	return s.runOne(ctx, p, &op{index: -1, method: methodDelete, url: typ, typ: typ, criteria: q, ifMatch: ifMatch}, multiple)
}
