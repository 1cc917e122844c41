package manifest

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// maxDepth bounds nesting; no document of this package nests deeper than a few levels.
const maxDepth = 32

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeStrict decodes one JSON value into v, refusing unknown fields, field names
// that differ from the tags only in case, duplicate keys and trailing data.
// encoding/json alone accepts the last three, and a signed document must mean one
// thing to every reader.
func decodeStrict(data []byte, v any) error {
	w := walker{dec: json.NewDecoder(bytes.NewReader(data)), fields: map[reflect.Type]map[string]reflect.Type{}}
	w.dec.UseNumber()
	if err := w.walk(reflect.TypeOf(v), 0); err != nil {
		return fmt.Errorf("%w: %w", err, ErrMalformed)
	}
	if _, err := w.dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON document: %w", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", err, ErrMalformed)
	}
	return nil
}

type walker struct {
	dec    *json.Decoder
	fields map[reflect.Type]map[string]reflect.Type
}

// walk consumes one value, checking object keys against t (nil: any keys, no duplicates).
// Value types are left to encoding/json, which runs next.
func (w *walker) walk(t reflect.Type, depth int) error {
	if depth > maxDepth {
		return errors.New("JSON nested too deeply")
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && custom(t) {
		// It decodes itself strictly (ChunkRef, time.Time, keys): skip the value whole,
		// which is much cheaper than token by token for tens of thousands of chunks.
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			return fmt.Errorf("bad JSON: %w", err)
		}
		return nil
	}
	tok, err := w.dec.Token()
	if err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		var fields map[string]reflect.Type
		isStruct := t != nil && t.Kind() == reflect.Struct
		if isStruct {
			fields = w.fieldsOf(t)
		}
		seen := map[string]bool{}
		for w.dec.More() {
			kt, err := w.dec.Token()
			if err != nil {
				return fmt.Errorf("bad JSON: %w", err)
			}
			key, _ := kt.(string)
			if seen[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			seen[key] = true
			var ft reflect.Type
			switch {
			case isStruct:
				var known bool
				if ft, known = fields[key]; !known {
					return fmt.Errorf("unknown field %q (a newer publisher? upgrade patchmesh on this machine)", key)
				}
			case t != nil && t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			if err := w.walk(ft, depth+1); err != nil {
				return err
			}
		}
	case '[':
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for w.dec.More() {
			if err := w.walk(et, depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := w.dec.Token(); err != nil { // closing delimiter
		return fmt.Errorf("bad JSON: %w", err)
	}
	return nil
}

func custom(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(jsonUnmarshalerType) || p.Implements(textUnmarshalerType)
}

// fieldsOf maps the exact JSON names of t's fields to their types.
func (w *walker) fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := w.fields[t]; ok {
		return f
	}
	f := map[string]reflect.Type{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f[name] = sf.Type
	}
	w.fields[t] = f
	return f
}
