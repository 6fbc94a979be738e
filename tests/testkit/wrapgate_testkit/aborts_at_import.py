"""A plugin whose import raises its own subclass of ``BaseException`` (neither
``Exception``, ``KeyboardInterrupt`` nor ``SystemExit``)."""


class PluginAbort(BaseException):
    pass


raise PluginAbort("this plugin refuses to load")
