package fakes

import "github.com/gantry-dev/gantry/internal/awsjson"

// AWSJSON turns an SDK output struct into the value encoding/json writes as awsJson1.1 (see
// awsjson.Value).
func AWSJSON(v any) any { return awsjson.Value(v) }
