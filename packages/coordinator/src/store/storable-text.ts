import {
  OperationNodeTransformer,
  PrimitiveValueListNode,
  ValueNode,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from "kysely";

const NOT_STORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The store's text domain: well-formed Unicode without NUL. PostgreSQL refuses NUL in `text` ("invalid byte sequence
 * for encoding UTF8: 0x00") and both drivers turn a lone surrogate into U+FFFD on the way to UTF-8; SQLite takes both.
 * Replacing each with U+FFFD before any driver sees it makes every string storable, and stored the same way, on both
 * dialects. JSON columns are unaffected (JSON.stringify escapes both as ASCII), and prompts and outputs are
 * ciphertext, so this only touches free text such as a node's error message or a name.
 */
export function storableText(value: string): string {
  return value.replace(NOT_STORABLE, "\uFFFD");
}

function storable(value: unknown): unknown {
  return typeof value === "string" ? storableText(value) : value;
}

class StorableTextTransformer extends OperationNodeTransformer {
  protected override transformValue(node: ValueNode): ValueNode {
    const value = storable(node.value);
    return value === node.value ? node : { ...node, value };
  }

  protected override transformPrimitiveValueList(node: PrimitiveValueListNode): PrimitiveValueListNode {
    return { ...node, values: node.values.map(storable) };
  }
}

/**
 * Applies `storableText` to every string parameter of every query, written or compared, so a lookup by a name with
 * NUL finds the row stored under that name on both dialects instead of failing on one.
 */
export class StorableTextPlugin implements KyselyPlugin {
  private readonly transformer = new StorableTextTransformer();

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.transformer.transformNode(args.node);
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}
