// fn is found under a sub-directory: handler "nested/dir.fn".
exports.fn = async () => 'nested';
