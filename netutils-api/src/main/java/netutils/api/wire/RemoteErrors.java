package netutils.api.wire;

import netutils.api.Message;
import netutils.api.MessageType;
import netutils.api.RemoteErrorException;

/** How connections turn a received {@link MessageType#ERROR error} message into an exception. */
public final class RemoteErrors {
    private RemoteErrors() {
    }

    /**
     * Returns {@code message}, or throws if it is an error message from the peer.
     *
     * @param message a received message
     * @return {@code message}, if it is not an error message
     * @throws RemoteErrorException if {@code message} is of type {@link MessageType#ERROR}, with its code and detail
     */
    public static Message check(Message message) throws RemoteErrorException {
        if (message.type().equals(MessageType.ERROR)) {
            throw new RemoteErrorException(message.meta("code").orElse("UNKNOWN"),
                    message.meta("detail").orElse("(no detail)"));
        }
        return message;
    }
}
