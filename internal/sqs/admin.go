package sqs

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
)

// MaxPeek is the most messages GET /@queues/{name} lists.
const MaxPeek = 100

// Mux is where RegisterAdmin adds its routes.
type Mux interface {
	Handle(pattern string, handler http.Handler)
}

// QueueView describes a queue for the CLI and the dashboard.
type QueueView struct {
	Name            string `json:"name"`
	ARN             string `json:"arn"`
	Visible         int    `json:"visible"`
	InFlight        int    `json:"inFlight"`
	Delayed         int    `json:"delayed"`
	DeadLetter      string `json:"deadLetter,omitempty"`
	MaxReceiveCount int    `json:"maxReceiveCount,omitempty"`
	// Sources are the queues whose dead-letter queue this is: a queue
	// with sources can be redriven.
	Sources []string `json:"sources,omitempty"`
}

// MessageView is a message listed without being received.
type MessageView struct {
	ID           string    `json:"id"`
	Body         string    `json:"body"`
	SentAt       time.Time `json:"sentAt"`
	ReceiveCount int       `json:"receiveCount"`
	// Source is the queue a dead letter came from.
	Source string `json:"source,omitempty"`
}

// RegisterAdmin adds Switchboard's own queue calls to mux, at the root and
// under /{stage}, for the CLI and the dashboard:
//
//	GET  /@queues                  {"queues": [QueueView...]}
//	GET  /@queues/{name}           {"queue": QueueView, "messages": [MessageView...]} (the first 100)
//	POST /@queues/{name}/redrive   {"moved": n}: a dead-letter queue's messages back to their queues
//
// Errors answer with x-amzn-ErrorType and {"message"}, as the management
// API does: 404 NotFoundException for no such queue, 400
// BadRequestException for a redrive of a queue that is no dead-letter queue.
func (a *API) RegisterAdmin(mux Mux, stage string) {
	for _, prefix := range []string{"", "/" + stage} {
		mux.Handle("GET "+prefix+"/@queues", adminHandler(a.listQueues))
		mux.Handle("GET "+prefix+"/@queues/{name}", adminHandler(a.showQueue))
		mux.Handle("POST "+prefix+"/@queues/{name}/redrive", adminHandler(a.redrive))
	}
}

type adminError struct {
	status int
	typ    string
	msg    string
}

func (e *adminError) Error() string { return e.msg }

func adminHandler(h func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		out, err := h(r)
		if err != nil {
			ae := &adminError{http.StatusInternalServerError, "InternalServerErrorException", err.Error()}
			switch {
			case errors.Is(err, queue.ErrNotFound):
				ae = &adminError{http.StatusNotFound, "NotFoundException", "queue " + r.PathValue("name") + " does not exist"}
			case errors.Is(err, queue.ErrNoDeadLetter):
				ae = &adminError{http.StatusBadRequest, "BadRequestException", "queue " + r.PathValue("name") + " is no queue's dead-letter queue"}
			}
			w.Header().Set("x-amzn-ErrorType", ae.typ)
			w.WriteHeader(ae.status)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": ae.msg})
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	})
}

func (a *API) view(r *http.Request, name string) (QueueView, error) {
	in, err := a.opts.Store.Info(r.Context(), name)
	if err != nil {
		return QueueView{}, err
	}
	return QueueView{Name: name, ARN: ARN(a.opts.Region, a.opts.Account, name), Visible: in.Visible, InFlight: in.InFlight,
		Delayed: in.Delayed, DeadLetter: in.Attributes.DeadLetter, MaxReceiveCount: in.Attributes.MaxReceiveCount, Sources: in.Sources}, nil
}

func (a *API) listQueues(r *http.Request) (any, error) {
	names, err := a.opts.Store.Queues(r.Context())
	if err != nil {
		return nil, err
	}
	out := []QueueView{}
	for _, n := range names {
		v, err := a.view(r, n)
		if errors.Is(err, queue.ErrNotFound) {
			continue // dropped by a reload meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return map[string][]QueueView{"queues": out}, nil
}

func (a *API) showQueue(r *http.Request) (any, error) {
	name := r.PathValue("name")
	v, err := a.view(r, name)
	if err != nil {
		return nil, err
	}
	msgs, err := a.opts.Store.Peek(r.Context(), name, MaxPeek)
	if err != nil {
		return nil, err
	}
	out := struct {
		Queue    QueueView     `json:"queue"`
		Messages []MessageView `json:"messages"`
	}{Queue: v, Messages: []MessageView{}}
	for _, m := range msgs {
		out.Messages = append(out.Messages, MessageView{ID: m.ID, Body: m.Body, SentAt: m.SentAt.UTC(), ReceiveCount: m.ReceiveCount, Source: m.DeadLetterSource})
	}
	return out, nil
}

func (a *API) redrive(r *http.Request) (any, error) {
	n, err := a.opts.Store.Redrive(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return map[string]int{"moved": n}, nil
}
