/**
 * The OTLP logs messages Custody reads and writes, built at start-up with protobufjs from the
 * schema text below: opentelemetry/proto/{common,resource,logs}/v1 and
 * collector/logs/v1 (field numbers as in open-telemetry/opentelemetry-proto), plus
 * google.rpc.Status for error answers (OTLP specification, "Failures": the body of every 4xx/5xx
 * is a Status). Only the messages needed here; no generated code.
 */
import protobuf from 'protobufjs';

const COMMON = `
syntax = "proto3";
package opentelemetry.proto.common.v1;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
message EntityRef {
  string schema_url = 1;
  string type = 2;
  repeated string id_keys = 3;
  repeated string description_keys = 4;
}
`;

const RESOURCE = `
syntax = "proto3";
package opentelemetry.proto.resource.v1;
message Resource {
  repeated .opentelemetry.proto.common.v1.KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
  repeated .opentelemetry.proto.common.v1.EntityRef entity_refs = 3;
}
`;

const LOGS = `
syntax = "proto3";
package opentelemetry.proto.logs.v1;
message ResourceLogs {
  .opentelemetry.proto.resource.v1.Resource resource = 1;
  repeated ScopeLogs scope_logs = 2;
  string schema_url = 3;
}
message ScopeLogs {
  .opentelemetry.proto.common.v1.InstrumentationScope scope = 1;
  repeated LogRecord log_records = 2;
  string schema_url = 3;
}
message LogRecord {
  fixed64 time_unix_nano = 1;
  fixed64 observed_time_unix_nano = 11;
  int32 severity_number = 2;
  string severity_text = 3;
  .opentelemetry.proto.common.v1.AnyValue body = 5;
  repeated .opentelemetry.proto.common.v1.KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7;
  fixed32 flags = 8;
  bytes trace_id = 9;
  bytes span_id = 10;
  string event_name = 12;
}
`;

// severity_number is the SeverityNumber enum on the wire (a varint); read as int32 so an
// unknown value survives instead of being rejected.

const COLLECTOR = `
syntax = "proto3";
package opentelemetry.proto.collector.logs.v1;
message ExportLogsServiceRequest {
  repeated .opentelemetry.proto.logs.v1.ResourceLogs resource_logs = 1;
}
message ExportLogsServiceResponse {
  ExportLogsPartialSuccess partial_success = 1;
}
message ExportLogsPartialSuccess {
  int64 rejected_log_records = 1;
  string error_message = 2;
}
`;

const RPC = `
syntax = "proto3";
package google.rpc;
message Status {
  int32 code = 1;
  string message = 2;
}
`;

const root = new protobuf.Root();
for (const text of [COMMON, RESOURCE, LOGS, COLLECTOR, RPC]) protobuf.parse(text, root);
root.resolveAll();

export const ExportLogsServiceRequest = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
export const ExportLogsServiceResponse = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse');
export const RpcStatus = root.lookupType('google.rpc.Status');

/** Decoded message objects: present fields are own properties (protobufjs leaves defaults on the prototype). */
export type PbMessage = Record<string, unknown>;

export function has(m: PbMessage, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, field);
}

/** int64/uint64/fixed64 as protobufjs returns them (Long or number) → decimal string. */
export function longString(v: unknown): string {
  if (typeof v === 'number') return String(Math.trunc(v));
  if (typeof v === 'bigint') return v.toString();
  if (v && typeof v === 'object' && 'toString' in v) return (v as { toString(): string }).toString();
  return '0';
}

/**
 * Counts the LogRecords of an encoded ExportLogsServiceRequest by walking the wire format
 * (resource_logs = 1 → scope_logs = 2 → log_records = 2) without building messages, so a body
 * of millions of tiny records is refused before it is decoded. Throws on malformed input.
 */
export function countLogRecords(buf: Uint8Array): number {
  const { Reader } = protobuf;
  let n = 0;
  const each = (r: protobuf.Reader, field: number, fn: (inner: protobuf.Reader) => void) => {
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === field && (tag & 7) === 2) fn(Reader.create(r.bytes()));
      else r.skipType(tag & 7);
    }
  };
  each(Reader.create(buf), 1, (rl) =>
    each(rl, 2, (sl) =>
      each(sl, 2, () => {
        n++;
      }),
    ),
  );
  return n;
}
