// Package awsjson renders aws-sdk-go-v2 types as the JSON AWS itself writes (awsJson1.1:
// lowerCamelCase members), the form `aws ecs describe-task-definition` prints and users keep in
// their repositories. The SDK serialises through internal packages only, hence this small encoder.
package awsjson

import (
	"reflect"
	"time"
	"unicode"
	"unicode/utf8"
)

var timeType = reflect.TypeFor[time.Time]()

// Value turns an SDK output struct into the value encoding/json writes as awsJson1.1: members in
// lowerCamelCase (the SDK's schema member names), nil members and unset enums left out, timestamps as
// epoch seconds.
func Value(v any) any { return awsJSONValue(reflect.ValueOf(v)) }

func awsJSONValue(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == timeType {
		t := v.Interface().(time.Time)
		return float64(t.UnixMilli()) / 1000
	}
	switch v.Kind() {
	case reflect.Struct:
		out := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Name == "ResultMetadata" {
				continue
			}
			fv := v.Field(i)
			if (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map || fv.Kind() == reflect.Interface) && fv.IsNil() {
				continue
			}
			if fv.Kind() == reflect.String && fv.String() == "" {
				continue // unset enum
			}
			out[lowerFirst(f.Name)] = awsJSONValue(fv)
		}
		return out
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = awsJSONValue(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = awsJSONValue(v.MapIndex(k))
		}
		return out
	case reflect.String:
		return v.String() // also the SDK's string enums
	default:
		return v.Interface()
	}
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}
