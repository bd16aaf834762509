namespace EtcdShield.Configuration;

/// <summary>
/// Settings an operator must fix before the command can run; each message says what and how. Every problem found
/// is reported at once (<see cref="Errors"/>), so one run shows the whole list.
/// </summary>
internal sealed class ConfigurationException : Exception
{
    public ConfigurationException(string message)
        : this([message])
    {
    }

    public ConfigurationException(string message, Exception inner)
        : base(message, inner)
    {
        Errors = [message];
    }

    public ConfigurationException()
        : this("invalid configuration")
    {
    }

    public ConfigurationException(IReadOnlyList<string> errors)
        : base(string.Join(Environment.NewLine, errors))
    {
        Errors = errors;
    }

    /// <summary>One line per problem, in the order found.</summary>
    public IReadOnlyList<string> Errors { get; }
}
