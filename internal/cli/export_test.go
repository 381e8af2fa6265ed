package cli

// ManageForTest is Manage with its standard input given, for DATA "-".
var ManageForTest = manage
