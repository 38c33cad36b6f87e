using System.Numerics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace SaeSharp.Server;

/// <summary>The JSON of every endpoint: snake_case names, enums by snake_case name, non-finite numbers as null.</summary>
public static class Json
{
    public static JsonSerializerOptions Options { get; } = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        o.Converters.Add(new Finite<double>());
        o.Converters.Add(new Finite<float>());
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    /// <summary>A double or float that is written as null when it is not finite (JSON has no NaN) and read back as NaN.</summary>
    private sealed class Finite<T> : JsonConverter<T> where T : struct, IFloatingPointIeee754<T>
    {
        public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Null ? T.NaN : T.CreateChecked(reader.GetDouble());

        public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
        {
            if (!T.IsFinite(value)) writer.WriteNullValue();
            else if (value is float f) writer.WriteNumberValue(f); // a float's own shortest digits, not its double's
            else writer.WriteNumberValue(double.CreateChecked(value));
        }
    }
}
